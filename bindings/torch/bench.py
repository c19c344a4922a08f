"""allreduce latency and DDP epoch time, rdmatrain against gloo in the same run.

    PYTHONPATH=build/bindings/torch /usr/bin/python3 bindings/torch/bench.py [--ranks 2 4]
        [--sizes 8 940584] [--ddp [N]]

Per rank count, one job: the default group is rdmatrain, a gloo group spans the same ranks.
For each size and backend: warm-up calls, then ITERS blocking dist.all_reduce calls (float32,
SUM), each timed on every rank; the time of a call is the slowest rank's; printed: the median,
the mean, and the 10th and 90th percentiles. 940584 B is the MLP's gradient (235146 float32). --ddp N adds
N epochs of DDP training of the MLP (60000 samples, per-rank batch 32, SGD, DDP's default
buckets) per backend, the backends taking turns, and their median.
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# this folder holds the package's sources without the compiled module: import the built one
# (PYTHONPATH=<build>/bindings/torch), not these
if sys.path and os.path.abspath(sys.path[0]) == HERE:
    del sys.path[0]
sys.path.insert(0, os.path.join(HERE, "tests"))
import harness  # noqa: E402


def bench_allreduce(dist, torch, group, nbytes, iters, warmup):
    t = torch.ones(max(1, nbytes // 4))
    for _ in range(warmup):
        dist.all_reduce(t, group=group)
    times = torch.zeros(iters, dtype=torch.float64)
    for i in range(iters):
        t0 = time.perf_counter()
        dist.all_reduce(t, group=group)
        times[i] = time.perf_counter() - t0
    return times


def ddp_epoch(dist, torch, group, backend):
    import mlp
    x, y = mlp.load("train")
    xt, yt = mlp.load("t10k")
    rank, size = dist.get_rank(), dist.get_world_size()
    net = torch.nn.parallel.DistributedDataParallel(mlp.model(), process_group=group)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))
    steps = len(x) // (32 * size)
    dist.barrier(group=group)
    t0 = time.perf_counter()
    for step in range(steps):
        idx = order[(step * size + rank) * 32:(step * size + rank + 1) * 32]
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
        opt.step()
    dist.barrier(group=group)
    secs = time.perf_counter() - t0
    return secs, steps, mlp.accuracy(net.module, xt, yt)


def worker(sizes, ddp):
    import torch
    import torch.distributed as dist
    import rdmatrain_torch  # noqa: F401

    torch.set_num_threads(1)
    dist.init_process_group("rdmatrain")
    groups = {"rdmatrain": None, "gloo": dist.new_group(backend="gloo")}
    rank, size = dist.get_rank(), dist.get_world_size()
    for nbytes in sizes:
        iters, warmup = (1000, 100) if nbytes <= 65536 else (200, 20)
        for name, group in groups.items():
            times = bench_allreduce(dist, torch, group, nbytes, iters, warmup)
            dist.all_reduce(times, op=dist.ReduceOp.MAX, group=groups["gloo"])  # slowest rank
            if rank == 0:
                q = statistics.quantiles(times.tolist(), n=10)
                print("allreduce %8d B  %2d ranks  %-9s  median %9.1f us  mean %9.1f  p10 %9.1f  "
                      "p90 %9.1f" % (nbytes, size, name, statistics.median(times.tolist()) * 1e6,
                                     statistics.fmean(times.tolist()) * 1e6, q[0] * 1e6,
                                     q[-1] * 1e6), flush=True)
    epochs = {name: [] for name in groups}
    for _ in range(ddp):  # the backends take turns, so that a busy spell hits both
        for name, group in groups.items():
            secs, steps, acc = ddp_epoch(dist, torch, group, name)
            epochs[name].append(secs)
            if rank == 0:
                print("DDP epoch  %2d ranks  %-9s  %6.2f s  (%d steps, %.2f ms/step, test "
                      "accuracy %.4f)" % (size, name, secs, steps, secs / steps * 1e3, acc),
                      flush=True)
    if ddp > 1 and rank == 0:
        for name, secs in epochs.items():
            print("DDP epoch  %2d ranks  %-9s  median of %d: %6.2f s" % (
                size, name, len(secs), statistics.median(secs)), flush=True)
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ranks", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 940584])
    ap.add_argument("--ddp", type=int, nargs="?", const=1, default=0, metavar="N",
                    help="also time N DDP epochs per backend (default 1)")
    args = ap.parse_args()
    env = {"PYTHONPATH": os.pathsep.join(
        [os.path.join(os.path.dirname(os.path.abspath(__file__)), "tests"),
         os.environ.get("PYTHONPATH", "")])}
    ok = True
    for n in args.ranks:
        results = harness.launch(os.path.abspath(__file__), n, env=env, timeout=1800,
                                 args=[",".join(map(str, args.sizes)), str(args.ddp)])
        sys.stdout.write(results[0][1])
        if any(rc != 0 for rc, _ in results):
            harness.report("bench %d ranks" % n, results)
            ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker([int(s) for s in sys.argv[2].split(",")], int(sys.argv[3]))
    else:
        main()
