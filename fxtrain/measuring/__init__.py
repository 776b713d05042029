"""Measured cost: the exported training step (or inference) run under Unicorn, instruction by instruction.

An ELF image with its phases (:mod:`elfimage`), the emulator (:mod:`emulate`),
instruction classes and prices (:mod:`classify`), tallies by phase (:mod:`tally`)
and ``fxtrain measure`` itself (:mod:`measure`). Built on :mod:`fxtrain.firmware`,
which exports and checks the program; the TFLite stage is a sibling, not a dependency.
Named ``measuring``, not ``measure``: a subpackage ``fxtrain.measure`` would shadow the
public function of that name once imported. Nothing is imported here.
"""
