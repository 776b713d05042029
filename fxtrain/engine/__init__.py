"""The integer training engine: fixed-point rules, numba kernels, passes, update rules, epochs.

Nothing is imported here, so ``fxtrain.engine.numbers`` (pure Python) can be read
without loading numba.
"""
