"""Start N ranks of a test script as processes over loopback (torch's env:// initialisation:
RANK, WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT=a free port) and collect their results."""
import os
import random
import socket
import subprocess
import sys
import time


def free_port():
    """A port free now on 127.0.0.1, at random below the kernel's ephemeral range (as the
    launcher picks its own): a port from bind(0) is ephemeral, so any outgoing connection on the
    machine could take it before rank 0 binds it; below the range only another listener can."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        lo = 32768
    width = min(10000, lo - 1 - 1024)
    for _ in range(64 if width >= 256 else 0):
        port = lo - 1 - random.randrange(width)
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(script, nranks, args=(), env=None, timeout=120):
    """Run `python script --worker args...` as nranks ranks. Returns [(returncode, output)]."""
    return collect(start(script, nranks, args, env), timeout)


def start(script, nranks, args=(), env=None):
    """Start the ranks; returns their subprocess.Popen objects."""
    port = free_port()
    procs = []
    for rank in range(nranks):
        e = dict(os.environ)
        e.update(env or {})
        e.update(RANK=str(rank), WORLD_SIZE=str(nranks), LOCAL_RANK=str(rank),
                 LOCAL_WORLD_SIZE=str(nranks), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                 OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([sys.executable, script, "--worker", *args], env=e,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    return procs


def collect(procs, timeout):
    """Wait for every process (killing all after timeout s); returns [(returncode, output)]."""
    deadline = time.monotonic() + timeout
    results = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            out, _ = p.communicate()
            out += "\n[harness] killed after %d s" % timeout
            results.append((None, out))
            continue
        results.append((p.returncode, out))
    return results


def report(name, results):
    """Print every rank's output; return True when every rank exited 0."""
    ok = all(rc == 0 for rc, _ in results)
    for rank, (rc, out) in enumerate(results):
        if not ok or os.environ.get("RDT_TEST_VERBOSE"):
            sys.stdout.write("---- %s rank %d exit %s ----\n%s" % (name, rank, rc, out))
    print("%s: %d ranks %s" % (name, len(results), "passed" if ok else "FAILED"))
    return ok
