#!/usr/bin/python3
"""torch_ddp.py - the trainer's peer: PyTorch DistributedDataParallel over gloo, on CPU.

The same job as `rdmatrain train --parallel data`: MLP (ReLU) on Fashion-MNIST read from the
IDX files of Debian's dataset-fashion-mnist, softmax cross-entropy, SGD, per-rank batch B, the
global batch of step k being samples [k*B*W, (k+1)*B*W) of one permutation per epoch, the tail
dropped. Run it with Debian's interpreter (/usr/bin/python3, python3-torch 1.13), one process
per rank under torch.distributed.run on 127.0.0.1, or directly for one process (no DDP):

  /usr/bin/python3 tools/peers/torch_ddp.py train --batch 128
  /usr/bin/python3 -m torch.distributed.run --redirects 9:1 --tee 9:1 --nnodes 1 \
      --nproc_per_node 2 --master_addr 127.0.0.1 --master_port 29700 \
      tools/peers/torch_ddp.py train --batch 64

(--redirects/--tee: torch 1.13's torchrun fails on Python 3.11 without them.) Every rank uses
one thread (torch and OpenBLAS), as rdmatrain's ranks do. Rank 0 prints one line per epoch:
  torch epoch E: T s, S samples/s, train loss L, test accuracy A
with T the slowest rank's time for the epoch's steps (evaluation not included).

  allreduce   time torch.distributed.all_reduce (float32 sum) per size, median of --iters.
"""
import argparse
import ctypes
import gzip
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist"


def idx(path):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        raw = f.read()
    nd = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * nd).reshape(dims)


def dataset(d, test):
    p = "t10k" if test else "train"
    x = idx(os.path.join(d, f"{p}-images-idx3-ubyte.gz"))
    y = idx(os.path.join(d, f"{p}-labels-idx1-ubyte.gz"))
    return (torch.from_numpy(x.reshape(len(x), -1).astype(np.float32) / 255.0),
            torch.from_numpy(y.astype(np.int64)))


def one_thread():
    torch.set_num_threads(1)
    try:
        blas = ctypes.CDLL("libopenblas.so.0")
        blas.openblas_set_num_threads(1)
        blas.openblas_get_corename.restype = ctypes.c_char_p
        return blas.openblas_get_corename().decode()
    except OSError:
        return "?"


def reduce(vals, op, world):
    t = torch.tensor(vals, dtype=torch.float64)
    if world > 1:
        dist.all_reduce(t, op=op)
    return t.tolist()


def train(a):
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    core = one_thread()
    if world > 1:
        dist.init_process_group("gloo", rank=rank, world_size=world)
    xtr, ytr = dataset(a.data, False)
    xte, yte = dataset(a.data, True)
    sizes = [int(s) for s in a.layers.split("-")]
    torch.manual_seed(a.seed)
    layers = [torch.nn.Linear(i, o) for i, o in zip(sizes, sizes[1:])]
    model = torch.nn.Sequential(*sum(([l, torch.nn.ReLU()] for l in layers[:-1]), []), layers[-1])
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    opt = torch.optim.SGD(net.parameters(), lr=a.lr, momentum=a.momentum)
    gb = a.batch * world
    steps = len(xtr) // gb
    if rank == 0:
        print(f"torch {torch.__version__}: {world} rank(s), model {a.layers}, global batch {gb}, "
              f"lr {a.lr}, momentum {a.momentum}, OpenBLAS kernels {core}", flush=True)
    for ep in range(a.epochs):
        g = torch.Generator()
        g.manual_seed(a.seed + ep)
        perm = torch.randperm(len(xtr), generator=g)
        mine = torch.cat([perm[k * gb + rank * a.batch:k * gb + (rank + 1) * a.batch]
                          for k in range(steps)])
        xs, ys = xtr[mine], ytr[mine]          # gathered before the clock starts
        if world > 1:
            dist.barrier()
        t0 = time.perf_counter()
        loss_sum = 0.0
        for k in range(steps):
            xb, yb = xs[k * a.batch:(k + 1) * a.batch], ys[k * a.batch:(k + 1) * a.batch]
            opt.zero_grad()
            loss = F.cross_entropy(net(xb), yb)
            loss.backward()
            opt.step()
            loss_sum += float(loss)
        secs = reduce([time.perf_counter() - t0], dist.ReduceOp.MAX if world > 1 else None,
                      world)[0]
        with torch.no_grad():
            part = slice(rank * len(xte) // world, (rank + 1) * len(xte) // world)
            correct = float((model(xte[part]).argmax(1) == yte[part]).sum())
        correct, loss_sum = reduce([correct, loss_sum], dist.ReduceOp.SUM if world > 1 else None,
                                   world)
        if rank == 0:
            print(f"torch epoch {ep + 1}: {secs:.3f} s, {steps * gb / secs:.0f} samples/s, "
                  f"train loss {loss_sum / (steps * world):.4f}, "
                  f"test accuracy {correct / len(xte):.4f}", flush=True)
    if world > 1:
        dist.barrier()
        sys.stdout.flush()
        os._exit(0)  # torch 1.13 can hang tearing down gloo's worker threads


def allreduce(a):
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    one_thread()
    dist.init_process_group("gloo", rank=rank, world_size=world)
    for nbytes in [int(s) for s in a.sizes.split(",")]:
        t = torch.full((max(1, nbytes // 4),), float(rank + 1))
        dist.all_reduce(t)
        ok = bool((t == world * (world + 1) / 2).all())
        t.zero_()
        for _ in range(10):
            dist.all_reduce(t)
        dist.barrier()
        times = []
        for _ in range(a.iters):
            t0 = time.perf_counter()
            dist.all_reduce(t)
            times.append(time.perf_counter() - t0)
        if rank == 0:
            print(f"torch allreduce {world} ranks {t.numel() * 4} B: median "
                  f"{statistics.median(times) * 1e6:.1f} us, mean "
                  f"{sum(times) / len(times) * 1e6:.1f} us{'' if ok else ' WRONG RESULT'}",
                  flush=True)
    dist.barrier()
    sys.stdout.flush()
    os._exit(0)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", default=DATA)
    t.add_argument("--epochs", type=int, default=3)
    t.add_argument("--batch", type=int, default=64, help="per rank")
    t.add_argument("--layers", default="784-256-128-10")
    t.add_argument("--lr", type=float, default=0.1)
    t.add_argument("--momentum", type=float, default=0.0)
    t.add_argument("--seed", type=int, default=1)
    r = sub.add_parser("allreduce")
    r.add_argument("--sizes", default="8,940584")
    r.add_argument("--iters", type=int, default=200)
    a = p.parse_args()
    (train if a.cmd == "train" else allreduce)(a)


if __name__ == "__main__":
    main()
