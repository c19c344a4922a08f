"""rdmatrain as a torch.distributed backend.

    import rdmatrain_torch                     # registers the backend "rdmatrain"
    torch.distributed.init_process_group("rdmatrain", ...)

Every rank of a group bootstraps its rdmatrain communicator through the c10d store torch
hands the backend (no other rendezvous). Under the rdmatrain launcher (`rdmatrain -H ...`),
importing this module also fills in what torch's env:// initialisation reads when it is not
set already: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE from RDT_RANK, RDT_SIZE,
RDT_LOCAL_RANK, RDT_LOCAL_SIZE, and MASTER_ADDR/MASTER_PORT from RDT_ROOT (the engine does not
listen there when it bootstraps through the store, so torch's store can).

Timeout: an operation that waits longer than the group's timeout raises a RuntimeError naming
the ranks it waited for. The group's timeout is the `timeout` given to init_process_group or
new_group; when that is torch's default (30 minutes), RDT_TIMEOUT's (default 300 s) instead.
A dead peer is reported at once, without waiting for the timeout.

Engine knobs (RDT_TIMEOUT, RDT_TRANSPORT, ...) are read from the environment when each group's
communicator is created. Limitations: CPU tensors only; alltoall_base with equal splits only;
send/recv take tag 0 only (messages between two ranks match in issue order); gather, scatter,
alltoall (list form) and the coalesced variants are not implemented.
"""
import os

import torch  # noqa: F401  before the extension, which uses the types torch registers
import torch.distributed as dist

from . import _rdmatrain_torch

BACKEND = "rdmatrain"

__all__ = ["BACKEND", "create_process_group"]


def create_process_group(store, rank, size, timeout):
    """The creator registered for "rdmatrain": (store, rank, size, timeout) -> ProcessGroup."""
    seconds = 0.0 if timeout == dist.default_pg_timeout else timeout.total_seconds()
    return _rdmatrain_torch.create_process_group(store, rank, size, seconds)


def _env_from_launcher():
    env = os.environ
    if "RDT_RANK" not in env:
        return
    for torch_name, rdt_name in (("RANK", "RDT_RANK"), ("WORLD_SIZE", "RDT_SIZE"),
                                 ("LOCAL_RANK", "RDT_LOCAL_RANK"),
                                 ("LOCAL_WORLD_SIZE", "RDT_LOCAL_SIZE")):
        if torch_name not in env and rdt_name in env:
            env[torch_name] = env[rdt_name]
    root = env.get("RDT_ROOT")
    if root and "MASTER_ADDR" not in env and "MASTER_PORT" not in env:
        host, _, port = root.rpartition(":")
        env["MASTER_ADDR"] = host.strip("[]")
        env["MASTER_PORT"] = port


_env_from_launcher()
if BACKEND.upper() not in dist.Backend._plugins:
    dist.Backend.register_backend(BACKEND, create_process_group)
