"""Every operation of the rdmatrain backend against gloo on the same inputs, 2 and 4 ranks.

The default group is rdmatrain; a gloo group over the same ranks computes the reference (or,
where gloo 1.13 lacks the operation, a gloo operation it is built from: reduce_scatter from
allreduce, _allgather_base from allgather). Integer inputs and float inputs that are small
integers are compared exactly; random floats with a tolerance.
"""
import os
import sys

import harness

DTYPES = ["float32", "float64", "float16", "bfloat16", "int32", "int64", "uint8", "int8"]
OPS = ["SUM", "AVG", "PRODUCT", "MIN", "MAX"]


def worker():
    import torch
    import torch.distributed as dist
    import rdmatrain_torch  # noqa: F401  registers "rdmatrain"

    dist.init_process_group("rdmatrain")
    rank, size = dist.get_rank(), dist.get_world_size()
    assert dist.get_backend() == "rdmatrain", dist.get_backend()
    # the bootstrap deletes the store keys it wrote: torch 1.13 itself leaves 2 in the store
    # (TCPStore's init key and the store-based barrier's), so any leftover makes 3 or more
    dist.barrier()
    nkeys = dist.distributed_c10d._get_default_store().num_keys()
    assert nkeys == 2, "%d keys left in the store after bootstrap, expected torch's 2" % nkeys
    dist.barrier()  # every rank has counted before the gloo group adds keys
    gloo = dist.new_group(backend="gloo")
    checks = [0]

    def same(name, got, want, exact=True):
        checks[0] += 1
        if exact:
            ok = got.dtype == want.dtype and got.shape == want.shape and torch.equal(got, want)
        else:
            ok = torch.allclose(got.double(), want.double(), rtol=1e-5, atol=1e-6)
        if not ok:
            raise AssertionError("%s: rank %d got %s, want %s" % (name, rank, got, want))

    def small_ints(dt, n, seed, lo=-3, hi=4):
        g = torch.Generator().manual_seed(seed)
        if dt == torch.uint8:
            lo = 0
        return torch.randint(lo, hi, (n,), generator=g).to(dt)

    def gloo_ref(fn, t):
        """Run fn(tensor, group=gloo) on a copy of t; AVG as SUM then division."""
        r = t.clone()
        fn(r)
        return r

    # allreduce: every dtype x every op, in place (torch's allreduce is in place), count 37
    for dname in DTYPES:
        dt = getattr(torch, dname)
        for opname in OPS:
            src = small_ints(dt, 37, 100 * rank + 7, lo=1 if opname == "PRODUCT" else -3,
                             hi=3 if opname == "PRODUCT" else 4)
            got = src.clone()
            dist.all_reduce(got, op=getattr(dist.ReduceOp, opname))
            if opname == "AVG":
                # gloo has no AVG: SUM in float32 (float64 for float64) or in the integer
                # type, then divided once (C division, truncating, for integers)
                wide = torch.float64 if dt == torch.float64 else (
                    torch.float32 if dt.is_floating_point else dt)
                want = gloo_ref(lambda x: dist.all_reduce(x, group=gloo), src.to(wide))
                if dt.is_floating_point:
                    want = (want / size).to(dt)
                else:
                    want = torch.div(want, size, rounding_mode="trunc").to(dt)
            elif dt == torch.bfloat16 or (dt == torch.uint8 and opname == "PRODUCT"):
                # gloo 1.13 reduces no bfloat16: reference in float32 (exact for these values)
                want = gloo_ref(lambda x: dist.all_reduce(
                    x, op=getattr(dist.ReduceOp, opname), group=gloo), src.to(torch.float32))
                want = want.to(torch.int64).to(dt) if dt == torch.uint8 else want.to(dt)
            else:
                want = gloo_ref(lambda x: dist.all_reduce(
                    x, op=getattr(dist.ReduceOp, opname), group=gloo), src)
            same("allreduce %s %s" % (dname, opname), got, want)

    # allreduce of random floats (summation order may differ from gloo's): tolerance
    for dt in (torch.float32, torch.float64):
        src = torch.randn(1000, generator=torch.Generator().manual_seed(rank), dtype=dt)
        got = src.clone()
        dist.all_reduce(got)
        same("allreduce randn %s" % dt, got, gloo_ref(lambda x: dist.all_reduce(x, group=gloo),
                                                      src), exact=False)

    # several allreduces in flight, as DDP issues its buckets; a non-contiguous tensor; count 0
    srcs = [small_ints(torch.float32, n, rank * 10 + n) for n in (1, 1000, 235146, 3)]
    gots = [s.clone() for s in srcs]
    works = [dist.all_reduce(g, async_op=True) for g in gots]
    futs = [w.get_future() for w in works]
    for i, w in enumerate(works):
        w.wait()
        same("allreduce in flight %d" % i, gots[i],
             gloo_ref(lambda x: dist.all_reduce(x, group=gloo), srcs[i]))
        assert futs[i].wait()[0] is not None and torch.equal(futs[i].wait()[0], gots[i])
    base = small_ints(torch.int64, 60, rank).view(6, 10)
    nc = base.clone().t()
    assert not nc.is_contiguous()
    dist.all_reduce(nc)
    same("allreduce non-contiguous", nc,
         gloo_ref(lambda x: dist.all_reduce(x, group=gloo), base.clone().t().contiguous()))
    empty = torch.empty(0)
    dist.all_reduce(empty)

    # broadcast from every root; bytes, so any dtype (bool too); non-contiguous
    for root in range(size):
        for dt in (torch.float32, torch.int64, torch.float16, torch.bool):
            src = small_ints(torch.int64, 29, rank + 50).to(dt)
            got = src.clone()
            dist.broadcast(got, src=root)
            # gloo broadcasts no bool: its reference goes as uint8
            wide = src.to(torch.uint8) if dt == torch.bool else src
            want = gloo_ref(lambda x: dist.broadcast(x, src=root, group=gloo), wide).to(dt)
            same("broadcast root %d %s" % (root, dt), got, want)
    nc = small_ints(torch.float32, 60, rank).view(6, 10).t()
    want = nc.contiguous()
    dist.broadcast(want, src=size - 1, group=gloo)
    dist.broadcast(nc, src=size - 1)
    same("broadcast non-contiguous", nc.contiguous(), want)

    # reduce: the root's result equals gloo's
    for root in range(size):
        for opname in ("SUM", "MAX", "PRODUCT"):
            src = small_ints(torch.int32, 41, rank + 60)
            got = src.clone()
            dist.reduce(got, dst=root, op=getattr(dist.ReduceOp, opname))
            want = gloo_ref(lambda x: dist.reduce(x, dst=root, op=getattr(dist.ReduceOp, opname),
                                                  group=gloo), src)
            if rank == root:
                same("reduce root %d %s" % (root, opname), got, want)

    # allgather, list form (out of place); a non-contiguous output
    for dt in (torch.float32, torch.int64, torch.uint8):
        src = small_ints(dt, 13, rank + 70)
        outs = [torch.empty(13, dtype=dt) for _ in range(size)]
        dist.all_gather(outs, src)
        wants = [torch.empty(13, dtype=dt) for _ in range(size)]
        dist.all_gather(wants, src, group=gloo)
        for i in range(size):
            same("allgather %s [%d]" % (dt, i), outs[i], wants[i])
    outs = [torch.zeros(10, 3).t() for _ in range(size)]
    src = small_ints(torch.float32, 30, rank + 71).view(3, 10)
    dist.all_gather(outs, src)
    for i in range(size):
        same("allgather non-contiguous [%d]" % i, outs[i].contiguous(),
             small_ints(torch.float32, 30, i + 71).view(3, 10))

    # _allgather_base (all_gather_into_tensor): out of place and in place
    src = small_ints(torch.float32, 17, rank + 80)
    wants = [torch.empty(17) for _ in range(size)]
    dist.all_gather(wants, src, group=gloo)
    want = torch.cat(wants)
    out = torch.empty(17 * size)
    dist.all_gather_into_tensor(out, src)
    same("all_gather_into_tensor", out, want)
    out = torch.full((17 * size,), -1.0)
    out[17 * rank:17 * (rank + 1)] = src
    dist.all_gather_into_tensor(out, out[17 * rank:17 * (rank + 1)])
    same("all_gather_into_tensor in place", out, want)

    # reduce_scatter (list form) and _reduce_scatter_base, out of place and in place; gloo
    # 1.13 has no reduce_scatter: the reference is gloo's allreduce of the whole input, block r
    for dname in ("float32", "int64", "bfloat16"):
        dt = getattr(torch, dname)
        for opname in ("SUM", "MAX", "AVG"):
            op = getattr(dist.ReduceOp, opname)
            src = small_ints(dt, 11 * size, rank + 90)
            full = src.to(torch.float32) if dt == torch.bfloat16 else src.clone()
            if opname == "AVG":
                dist.all_reduce(full, group=gloo)
                full = (full / size) if full.is_floating_point() else torch.div(
                    full, size, rounding_mode="trunc")
            else:
                dist.all_reduce(full, op=op, group=gloo)
            want = full.to(dt)[11 * rank:11 * (rank + 1)]
            out = torch.empty(11, dtype=dt)
            dist.reduce_scatter(out, list(src.chunk(size)), op=op)
            same("reduce_scatter %s %s" % (dname, opname), out, want)
            out = torch.empty(11, dtype=dt)
            dist.reduce_scatter_tensor(out, src, op=op)
            same("reduce_scatter_tensor %s %s" % (dname, opname), out, want)
            inplace = src.clone()
            dist.reduce_scatter_tensor(inplace[11 * rank:11 * (rank + 1)], inplace, op=op)
            same("reduce_scatter_tensor in place %s %s" % (dname, opname),
                 inplace[11 * rank:11 * (rank + 1)], want)

    # alltoall_base (all_to_all_single), equal splits: out of place, in place, explicit splits
    for dt in (torch.float32, torch.int64):
        src = small_ints(dt, 5 * size, rank + 110).view(size, 5)
        want = torch.empty_like(src)
        dist.all_to_all_single(want, src, group=gloo)
        out = torch.empty_like(src)
        dist.all_to_all_single(out, src)
        same("all_to_all_single %s" % dt, out, want)
        out = torch.empty_like(src)
        dist.all_to_all_single(out, src, [1] * size, [1] * size)
        same("all_to_all_single equal splits %s" % dt, out, want)
        inplace = src.clone()
        dist.all_to_all_single(inplace, inplace)
        same("all_to_all_single in place %s" % dt, inplace, want)
    try:
        splits = [2] + [1] * (size - 1)
        dist.all_to_all_single(torch.empty(size + 1), torch.empty(size + 1), splits, splits)
    except RuntimeError as e:
        assert "unequal split sizes are not supported" in str(e), str(e)
    else:
        raise AssertionError("all_to_all_single with unequal splits did not raise")

    # barrier
    dist.barrier()
    dist.barrier(async_op=True).wait()

    # send/recv around the ring (isend + irecv so every rank sends first) and blocking
    nxt, prv = (rank + 1) % size, (rank - 1) % size
    for n in (3, 300000):
        msg = small_ints(torch.float32, n, rank + 120)
        got = torch.empty(n)
        reqs = [dist.isend(msg, nxt), dist.irecv(got, prv)]
        for q in reqs:
            q.wait()
        same("isend/irecv %d" % n, got, small_ints(torch.float32, n, prv + 120))
    if rank % 2 == 0 and rank + 1 < size:
        dist.send(torch.arange(7), rank + 1)
    elif rank % 2 == 1:
        got = torch.empty(7, dtype=torch.int64)
        assert dist.recv(got, rank - 1) == rank - 1
        same("send/recv", got, torch.arange(7))
    try:
        dist.send(torch.zeros(1), nxt, tag=5)
    except RuntimeError as e:
        assert "tag 5 is not supported" in str(e), str(e)
    else:
        raise AssertionError("send with tag 5 did not raise")

    # new_group: subgroups are communicators of their own, bootstrapped through their stores
    sub = dist.new_group([0, 1])
    subs = dist.new_group(list(range(size - 1, -1, -2)))  # e.g. [3, 1] or [1]
    if rank in (0, 1):
        t = torch.full((5,), float(rank + 1))
        dist.all_reduce(t, group=sub)
        same("new_group [0, 1] allreduce", t, torch.full((5,), 3.0))
    if rank in range(size - 1, -1, -2):
        members = list(range(size - 1, -1, -2))
        t = torch.full((4,), rank, dtype=torch.int64)
        dist.all_reduce(t, group=subs)
        same("new_group %s allreduce" % members, t, torch.full((4,), sum(members)))
        b = torch.full((2,), rank)
        dist.broadcast(b, src=members[-1], group=subs)  # global rank of the group's root
        same("new_group broadcast", b, torch.full((2,), members[-1]))

    # the object collectives (pickles moved by allgather and broadcast of uint8 tensors)
    objs = [None] * size
    dist.all_gather_object(objs, {"rank": rank, "name": "r%d" % rank * (rank + 1)})
    checks[0] += 1
    assert objs == [{"rank": i, "name": "r%d" % i * (i + 1)} for i in range(size)], objs
    lst = [("from", rank, list(range(rank)))]
    dist.broadcast_object_list(lst, src=size - 1)
    checks[0] += 1
    assert lst == [("from", size - 1, list(range(size - 1)))], lst

    # unsupported operations say so
    try:
        dist.gather(torch.zeros(1), [torch.zeros(1) for _ in range(size)] if rank == 0 else None)
    except RuntimeError as e:
        assert "does not support gather" in str(e), str(e)
    else:
        raise AssertionError("gather did not raise")
    try:
        dist.all_reduce(torch.zeros(2, dtype=torch.bool))
    except RuntimeError as e:
        assert "not supported for reductions" in str(e), str(e)
    else:
        raise AssertionError("bool allreduce did not raise")
    c = torch.tensor([1 + 2j, 3 - 1j], dtype=torch.complex64) * (rank + 1)
    dist.all_reduce(c)  # torch passes complex SUM on as a float32 view
    same("allreduce complex64", c,
         torch.tensor([1 + 2j, 3 - 1j], dtype=torch.complex64) * (size * (size + 1) // 2))

    dist.barrier()
    dist.destroy_process_group()
    print("rank %d of %d: %d checks passed" % (rank, size, checks[0]))


def main():
    ok = True
    for n in (2, 4):
        ok &= harness.report("test_ops %d ranks" % n,
                             harness.launch(os.path.abspath(__file__), n, timeout=150))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker()
    else:
        main()
