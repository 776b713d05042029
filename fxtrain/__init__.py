"""fxtrain: integer-only on-device training, simulated bit for bit."""
__version__ = "0.1.0"
