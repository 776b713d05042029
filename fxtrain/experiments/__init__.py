"""Sweeps and the paper's experiments.

A sweep is a grid of cells, one training run (or one convex simulation) each,
run serially or on Dask distributed; each finished cell is written atomically as
its own record, keyed by a hash of its configuration and the fxtrain version, so
a rerun skips what is done. An experiment is a named sweep plus its analysis:
rows for a CSV, tables, and panels that the CLI draws.
"""
