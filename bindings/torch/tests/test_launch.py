"""The backend under both launchers: torchrun (its own rendezvous, RANK/WORLD_SIZE/MASTER_*) and
`rdmatrain -np N` (RDT_RANK/RDT_SIZE/RDT_ROOT, which importing rdmatrain_torch turns into
torch's variables). Each rank allreduces rank + 1, checks the sum, and says "ok".

    test_launch.py [path/to/rdmatrain]    (without the launcher, only torchrun runs)
"""
import os
import subprocess
import sys

import harness

N = 3


def worker():
    import torch
    import torch.distributed as dist
    import rdmatrain_torch  # noqa: F401

    dist.init_process_group("rdmatrain")
    rank, size = dist.get_rank(), dist.get_world_size()
    assert size == N, size
    t = torch.full((3,), float(rank + 1))
    dist.all_reduce(t)
    assert torch.equal(t, torch.full((3,), float(size * (size + 1) // 2))), t
    sub = dist.new_group([0, size - 1])
    if rank in (0, size - 1):
        u = torch.tensor([rank])
        dist.all_reduce(u, group=sub)
        assert u.item() == size - 1, u
    dist.barrier()
    dist.destroy_process_group()
    print("ok rank %d of %d under %s" % (rank, size, os.environ.get("RDT_ROOT") and "rdmatrain"
                                          or "torchrun"))


def run(name, cmd, env, port_retries=0):
    """Run a launcher; with @p port_retries, again (with a new port: @p cmd is called) as long
    as the only trouble was that its master port was taken meanwhile: free_port() releases
    the port it found, and a test running beside this one may bind it before torchrun does."""
    for attempt in range(port_retries + 1):
        p = subprocess.run(cmd() if callable(cmd) else cmd, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=120)
        if p.returncode == 0 or "Address already in use" not in p.stdout:
            break
        if attempt < port_retries:
            print("%s: its master port was taken by another process; again on a new port" % name)
    oks = [line for line in p.stdout.splitlines() if "ok rank" in line]
    ok = p.returncode == 0 and len(oks) == N
    if not ok:
        sys.stdout.write(p.stdout)
    print("%s: exit %d, %d of %d ranks ok: %s" % (name, p.returncode, len(oks), N,
                                                   "passed" if ok else "FAILED"))
    return ok


def main():
    me = os.path.abspath(__file__)
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") and
           not k.startswith("RDT_")}
    # torch 1.13's torchrun crashes on Python 3.11 without --redirects/--tee
    ok = run("torchrun", lambda: [sys.executable, "-m", "torch.distributed.run",
                                  "--nproc_per_node", str(N), "--master_port",
                                  str(harness.free_port()), "--redirects", "9:1", "--tee", "9:1",
                                  me, "--worker"], env, port_retries=2)
    if len(sys.argv) > 1:
        ok &= run("rdmatrain launcher", [sys.argv[1], "-np", str(N), "--", sys.executable, me,
                                         "--worker"], env)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker()
    else:
        main()
