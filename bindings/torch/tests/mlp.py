"""The Fashion-MNIST MLP of the trainer (784-256-128-10, ReLU) for the DDP tests and bench.py."""
import gzip
import os

import numpy as np
import torch

DATA = os.environ.get("RDT_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")


def load_idx(name):
    with gzip.open(os.path.join(DATA, name), "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(split):
    """(images as float32 N x 784 in [0, 1], labels as int64 N) of "train" or "t10k"."""
    x = load_idx("%s-images-idx3-ubyte.gz" % split).reshape(-1, 784).astype(np.float32) / 255.0
    y = load_idx("%s-labels-idx1-ubyte.gz" % split).astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y)


def model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                               torch.nn.Linear(256, 128), torch.nn.ReLU(),
                               torch.nn.Linear(128, 10))


def accuracy(net, x, y):
    with torch.no_grad():
        return (net(x).argmax(1) == y).float().mean().item()
