"""The training options, defined once and shared by ``train``, ``simulate`` and ``compare``."""
import click

from ..training.config import METHOD_HELP, METHODS, OPTIMIZER_HELP, OPTIMIZERS, TRAIN_DEFAULTS as D
from .types import Bits, LearningRate, Momentum, PositiveInt, Seed

_OPTIONS = {
    "arch": lambda: click.option(
        "--arch", default=D["arch"], metavar="ARCH",
        help="Layers, e.g. 'dense:32,dense:10' (default) or 'conv:8:3,pool:2,dense:10', and on windows "
             "(1, T, C) 'conv1d:8:5,pool1d:2,gap,dense:4' (conv:F:KHxKW: a non-square kernel). "
             "ReLU follows every hidden layer; the input shape comes from the data."),
    "method": lambda: click.option(
        "--method", type=click.Choice(METHODS), default=D["method"], show_default=True,
        help="; ".join(f"{m}: {h}" for m, h in METHOD_HELP.items()) + "."),
    "bits": lambda: click.option("--bits", type=Bits(), default=D["bits"], show_default=True,
                                 help="Weight bit width: 1, 2, 3, 4, 6, 8, 12 or 16."),
    # only `train` has --resume, so only its --epochs speaks of it
    "epochs": lambda resume=False: click.option(
        "--epochs", type=PositiveInt(), default=D["epochs"], show_default=True,
        help="Epochs to train" + ("; with --resume, the total to reach." if resume else ".")),
    "batch": lambda: click.option("--batch", type=PositiveInt(), default=D["batch"], show_default=True,
                                  help="Mini-batch size; a power of two keeps alpha/batch an exact shift."),
    "lr": lambda: click.option("--lr", type=LearningRate(), default=D["lr"], show_default=True,
                               help="Learning rate; must be m*2^-k with a 16-bit integer m (0.0625 yes, 0.1 no)."),
    "seed": lambda: click.option("--seed", type=Seed(), default=D["seed"], show_default=True,
                                 help="Seeds the generator (0 .. 2^32-1): same seed, same bits, on every machine."),
    "data": lambda: click.option("--data", default=D["data"], show_default=True, metavar="DATA",
                                 help="digits, moons, spirals, basicmotions, or a file: CSV (label in the last column) "
                                      "or NPZ (X and y, or X_train, y_train, X_test, y_test; "
                                      "X of shape (N, T, C) is sensor windows)."),
    "momentum": lambda: click.option(
        "--momentum", type=Momentum(), default=D["momentum"], show_default=True,
        help="The momentum optimizer's beta, 1-2^-j (0.5, 0.75, 0.875, ...); goes with --optimizer momentum."),
    "optimizer": lambda: click.option(
        "--optimizer", type=click.Choice(OPTIMIZERS), default=D["optimizer"], show_default=True,
        help="; ".join(f"{o}: {h}" for o, h in OPTIMIZER_HELP.items()) + "."),
    "train_layers": lambda: click.option(
        "--train-layers", type=PositiveInt(), default=D["train_layers"], metavar="N",
        help="Fine-tune: only the last N weight layers train; the layers under them are frozen (forward only, "
             "no error, no update, no draw) and their weights sit in flash on the device. Default: every layer."),
}


def train_options(*names, resume=False):
    """Decorator adding the named training options (all of them when none is named), in a fixed order;
    ``resume``: the command also has --resume."""
    chosen = [n for n in _OPTIONS if not names or n in names]

    def apply(fn):
        for name in reversed(chosen):
            fn = (_OPTIONS[name](resume) if name == "epochs" else _OPTIONS[name]())(fn)
        return fn
    return apply
