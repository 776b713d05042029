"""Import of pre-trained models (ONNX, through the optional ``onnx`` package): a stage right after
``training``, whose run folders it writes.

- :mod:`.onnx_file`: the file, its constants and its input;
- :mod:`.fold` and :mod:`.graph`: the graph walked into fxtrain's layers, :mod:`.ops` op by op;
- :mod:`.check`: the input's shape against the data's, and the float check against the reference evaluator;
- :mod:`.job`: the whole import, into a run folder at epoch 0.
"""
