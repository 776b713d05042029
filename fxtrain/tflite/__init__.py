"""TFLite: a deployed model as a ``.tflite`` flatbuffer, its export files, and TFLM's interpreter.

Built on :mod:`fxtrain.firmware` (calibration, reference inference, templates); the
C stage never imports this one. Nothing is imported here: the extras (flatbuffers,
tflite-micro) load only when a model is written or run.
"""
