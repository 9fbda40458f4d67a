"""Data-parallel runs: which process this is, and how rank 0 shares its set-up with the others.

`torchrun` and `accelerate launch` start one process per device (several nodes alike) and tell
each its place through RANK / LOCAL_RANK / WORLD_SIZE. Rank 0 alone takes the --out lock, runs
the preflight, builds the tiny base and writes every file; the other ranks wait for its plan in
a collective (a broadcast: a barrier that carries the result) and train with it. When rank 0
fails before training, the others learn it from the same broadcast and stop quietly with its
exit code, so the error is printed once.

A single process (no launcher) is a world of one: every call here is then a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from persona.errors import PersonaError


class OtherRankFailed(PersonaError):
    """Rank 0 failed before training and printed why; this rank stops without a second line."""

    quiet = True

    def __init__(self, exit_code: int):
        super().__init__("rank 0 failed before training")
        self.exit_code = exit_code


def _env_int(*names: str, default: int) -> int:
    for name in names:
        value = os.environ.get(name)
        if value not in (None, ""):
            try:
                return int(value)
            except ValueError:
                continue
    return default


@dataclass(frozen=True)
class World:
    """This process's place among the data-parallel processes (one per device)."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @classmethod
    def current(cls) -> World:
        """From the launcher's environment (torchrun, accelerate launch, mpirun)."""
        return cls(rank=_env_int("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", default=0),
                   local_rank=_env_int("LOCAL_RANK", "MPI_LOCALRANKID",
                                       "OMPI_COMM_WORLD_LOCAL_RANK", default=0),
                   size=_env_int("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", default=1))

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def start(self, cpu: bool) -> None:
        """Join the process group (gloo on the CPU, NCCL on CUDA) through accelerate's
        PartialState, the object the Trainer uses too, so both agree on it."""
        if not self.distributed:
            return
        from accelerate import PartialState

        PartialState(cpu=cpu)

    def share(self, payload: Any) -> Any:
        """Rank 0 sends `payload`; every rank returns it (a collective: all ranks must call)."""
        if not self.distributed:
            return payload
        import torch.distributed as dist

        box = [payload if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on one (e.g. a Ctrl-C seen by one process)."""
        if not self.distributed:
            return flag
        import torch
        import torch.distributed as dist

        cuda = dist.get_backend() == "nccl"  # NCCL reduces CUDA tensors only
        t = torch.tensor([1 if flag else 0],
                         device=f"cuda:{self.local_rank}" if cuda else "cpu")
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def wait(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def stop(self, wait: bool = True) -> None:
        """Leave the process group (torch warns at exit when a group is left open); `wait`
        first for the others, unless this rank failed and they may never arrive."""
        if not self.distributed:
            return
        import torch.distributed as dist

        if dist.is_initialized():
            if wait:
                dist.barrier()
            dist.destroy_process_group()


@dataclass(frozen=True)
class Failed:
    """What rank 0 shares instead of its plan when the set-up failed."""

    exit_code: int


def failure_code(e: BaseException) -> int:
    if isinstance(e, PersonaError):
        return e.exit_code
    if isinstance(e, KeyboardInterrupt):
        return 130
    return 2 if isinstance(e, OSError) else 1
