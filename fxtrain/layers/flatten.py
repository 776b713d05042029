"""``flatten``: a token only. fxtrain keeps activations in HWC order, which is already the flat
order a dense layer reads, so a flatten adds no layer, no code and no work anywhere."""

TOKEN = "flatten"
SYNTAX = "flatten"
