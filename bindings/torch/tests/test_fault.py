"""A rank SIGKILLed mid-training: the other ranks' next collective raises a RuntimeError that
carries the engine's sentence naming the dead rank, within the timeout (RDT_TIMEOUT=10 s).

3 ranks of DDP on the MLP; rank 1 kills itself after 20 steps (rank 0 hosts torch's store and
must survive). Once over shared memory (the default between local ranks), once over TCP."""
import datetime
import os
import re
import signal
import sys
import time

import harness

TIMEOUT_S = 10
VICTIM = 1
KILL_AFTER = 20


def worker():
    import torch
    import torch.distributed as dist
    import rdmatrain_torch  # noqa: F401
    import mlp

    torch.set_num_threads(1)
    if "RDT_TEST_TORCH_TIMEOUT" in os.environ:
        dist.init_process_group("rdmatrain", timeout=datetime.timedelta(
            seconds=float(os.environ["RDT_TEST_TORCH_TIMEOUT"])))
    else:
        dist.init_process_group("rdmatrain")
    rank = dist.get_rank()
    x, y = mlp.load("t10k")
    # small buckets so that several allreduces are in flight each step (with
    # find_unused_parameters=False DDP 1.13 keeps this model in one bucket)
    dist._DEFAULT_FIRST_BUCKET_BYTES = 256 * 1024
    net = torch.nn.parallel.DistributedDataParallel(mlp.model(), bucket_cap_mb=0.25,
                                                    find_unused_parameters=True)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    last = time.monotonic()
    try:
        for step in range(100000):
            if rank == VICTIM and step == KILL_AFTER:
                os.kill(os.getpid(), getattr(signal, os.environ["RDT_TEST_SIGNAL"]))
            idx = slice(step * 32 % 9984, step * 32 % 9984 + 32)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
            last = time.monotonic()
    except RuntimeError as e:
        print("rank %d raised after %.1f s: %s" % (rank, time.monotonic() - last, e))
        sys.stdout.flush()
        os._exit(0)
    print("rank %d: training went on without the dead rank" % rank)
    os._exit(1)


def main():
    ok = True
    # auto: shared memory between these local ranks. SIGKILL: the peer's death is seen at once
    # (RDT_TIMEOUT=10 s would be the limit); SIGSTOP: a peer that hangs, seen through the timeout,
    # here torch's init_process_group(timeout=4 s), which takes precedence over RDT_TIMEOUT.
    for sig, transport, torch_timeout in (("SIGKILL", "auto", None), ("SIGKILL", "tcp", None),
                                          ("SIGSTOP", "auto", 4)):
        print("== %s, RDT_TRANSPORT=%s, torch timeout %s" % (sig, transport, torch_timeout))
        ok &= run(sig, transport, torch_timeout)
    print("test_fault", "passed" if ok else "FAILED")
    sys.exit(0 if ok else 1)


def run(sig, transport, torch_timeout):
    env = {"RDT_TIMEOUT": str(TIMEOUT_S), "RDT_TRANSPORT": transport, "RDT_TEST_SIGNAL": sig}
    if torch_timeout:
        env["RDT_TEST_TORCH_TIMEOUT"] = str(torch_timeout)
    procs = harness.start(os.path.abspath(__file__), 3, env=env)
    survivors = harness.collect([p for r, p in enumerate(procs) if r != VICTIM], timeout=90)
    procs[VICTIM].kill()  # a stopped victim is still there
    results = survivors[:VICTIM] + harness.collect([procs[VICTIM]], 10) + survivors[VICTIM:]
    ok = True
    named = 0
    for rank, (rc, out) in enumerate(results):
        sys.stdout.write("---- test_fault rank %d exit %s ----\n%s" % (rank, rc, out))
        if rank == VICTIM:
            if rc != -signal.SIGKILL:  # by itself, or by run() once stopped
                print("FAIL: rank %d exited %s, expected SIGKILL" % (rank, rc))
                ok = False
            continue
        m = re.search(r"raised after ([0-9.]+) s: (.*)", out)
        if rc != 0 or not m:
            print("FAIL: rank %d exited %s without the expected exception:\n%s" % (rank, rc, out))
            ok = False
            continue
        secs, msg = float(m.group(1)), m.group(2)
        print("rank %d: %s s: %s" % (rank, secs, msg))
        names = bool(re.search(r"\brank %d\b" % VICTIM, msg))
        named += names
        # a dead rank is named by every survivor; a hung one by those that wait for it directly
        # (in a ring, rank 0 waits for rank 2, which waits for the stopped rank 1)
        if "rdmatrain" not in msg or (sig == "SIGKILL" and not names):
            print("FAIL: rank %d's exception does not name rank %d" % (rank, VICTIM))
            ok = False
        limit = torch_timeout or TIMEOUT_S
        if secs > limit + 2:
            print("FAIL: rank %d took %.1f s, more than the %d s timeout" % (rank, secs, limit))
            ok = False
        if sig == "SIGSTOP" and "timed out after %d s" % limit not in msg:
            print("FAIL: rank %d: not the %d s timeout" % (rank, limit))
            ok = False
    if not named:
        print("FAIL: no rank named the stopped rank %d" % VICTIM)
        ok = False
    return ok


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker()
    else:
        main()
