"""PyTorch's side of the engine benchmark: train the same net for N epochs, 1 thread, as a command.

It loads the data through fxtrain (the same split and int8 inputs, times 2**e_x, as
fxtrain's float method sees them) and trains ``refimpl.TorchNet`` with SGD at lr / batch,
the last partial batch dropped; no evaluation. ``bench_engine.py`` times this command
at two epoch counts, as it times ``fxtrain train``, so start-up costs cancel.

    python benchmarks/torch_epochs.py --arch dense:256,dense:10 --batch 64 --epochs 203
"""
import argparse
import sys

import common  # first: pins BLAS/OpenMP threads before numpy loads
import numpy as np

from fxtrain.data import load_dataset
from refimpl import TorchNet


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--epochs", type=int, required=True)
    ap.add_argument("--lr", type=float, default=0.0625)
    ap.add_argument("--data", default="digits")
    args = ap.parse_args(argv)
    data = load_dataset(args.data, 0)
    layers = common.make_run(data, "float", args.arch, args.batch).layers
    net = TorchNet(layers, args.lr, args.batch)
    X = data.X_train.astype(np.float32) * np.float32(2.0 ** data.e_x)
    Xt, Yt = net.tensors(X, data.y_train)
    gen = net.torch.Generator().manual_seed(0)
    for _ in range(args.epochs):
        net.epoch(Xt, Yt, gen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
