"""The experiments, registered once: name -> (module, one line for ``fxtrain experiment --help``).

No imports here: the CLI reads it to build its choices and help without loading an experiment.
"""

EXPERIMENTS = {
    "convex": ("exp_convex", "quantized SGD on least squares, ridge and logistic regression, exact arithmetic: "
                             "floors against the grid step at the averaged iterate, beside the theorems' bounds"),
    "lr-sweep": ("exp_lr", "digits: accuracy against learning rate, down past alpha*|g| < step"),
    "batch": ("exp_bits", "batch sizes 16..1024 for sr and bc, same epochs and same steps"),
    "bits": ("exp_bits", "test accuracy against bits for float, bc, sr, r on an MLP and a conv net"),
    "weight-change": ("exp_lr", "share of weights changed per epoch, sr and bc, per bit width"),
    "optimizer": ("exp_optimizer", "bc: SGD, Robbins-Monro SGD, momentum, Adam; sr: SGD, Robbins-Monro SGD, "
                                   "momentum"),
    "runtime": ("exp_optimizer", "simulator seconds per epoch, and estimated seconds on three Cortex-M cores"),
    "adapt": ("exp_adapt", "fine-tune a float-pretrained conv net to a second sensor: sr, r, bc, float x bits x "
                           "last 1, 2 or all layers; accuracy before/after, SRAM, measured cycles per sample"),
    "anneal": ("exp_anneal", "sr, r, bc under a rate decaying inside the run (and constant): accuracy and "
                             "weights changed"),
}


def help_table():
    """The experiments as click's help shows them: one name and its line per row."""
    width = max(map(len, EXPERIMENTS)) + 2
    return "\n".join(f"  {name:<{width}}{line}" for name, (_, line) in EXPERIMENTS.items())
