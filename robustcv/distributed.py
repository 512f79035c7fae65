"""torch.distributed under torchrun: one process by default, N processes when launched so.

``torchrun --nproc_per_node=N -m robustcv attack|train ...`` sets ``RANK``/``WORLD_SIZE``;
:func:`setup` then joins the process group (gloo on the CPU, NCCL on CUDA). Evaluation shards
the samples without padding duplicates (:func:`shard`) and gathers per-sample outcomes to every
rank (:func:`gather`), rank 0 alone writes; training wraps the model in DistributedDataParallel.
Without torchrun everything here is a no-op for a world of one.
"""
from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import Any, Iterator

import torch

TIMEOUT = datetime.timedelta(minutes=30)  # a rank waiting on a dead peer gives up after this


@dataclass(frozen=True)
class World:
    """This process's place in the job."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes files and shows progress (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def current() -> World:
    """The world of this process (a world of one when not launched by torchrun)."""
    if not _initialized():
        return World()
    import torch.distributed as dist

    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def launched_rank() -> int:
    """This process's rank as torchrun set it (0 when not launched by torchrun), known before the
    process group is joined: a mistake every rank makes alike is then said by rank 0 alone."""
    try:
        return int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0
    except ValueError:
        return 0


def setup(device: torch.device) -> tuple[World, torch.device]:
    """Join the process group when torchrun launched this process; returns the world and the
    device this rank uses (``cuda:LOCAL_RANK`` for CUDA)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1 or _initialized():
        return current(), device
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    return current(), device


def teardown() -> None:
    """Leave the process group (no-op when not joined)."""
    if _initialized():
        import torch.distributed as dist

        dist.destroy_process_group()


def shard(n: int, world: World) -> slice:
    """This rank's contiguous share of ``n`` items: sizes differ by at most one, no duplicates."""
    return slice(n * world.rank // world.size, n * (world.rank + 1) // world.size)


def gather(value: Any, world: World) -> list[Any]:
    """Every rank's ``value`` in rank order, on every rank (tensors travel on the CPU)."""
    if not world.distributed:
        return [value]
    import torch.distributed as dist

    values: list[Any] = [None] * world.size
    dist.all_gather_object(values, _to_cpu(value))
    return values


def broadcast(value: Any, world: World) -> Any:
    """Rank 0's ``value`` on every rank."""
    if not world.distributed:
        return value
    import torch.distributed as dist

    box = [value if world.main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextlib.contextmanager
def rank0_decides(world: World) -> Iterator[None]:
    """Run a check that only rank 0 makes (claiming an output, say) so that every rank agrees:
    a ``UserError`` raised in the block on rank 0 reaches every rank, which then stops too
    (rank 0 with the one line, the others with exit status 2 and no second copy of it) instead
    of going on to a collective that rank 0 never joins."""
    from robustcv.errors import UserError

    refusal = None
    try:
        yield
    except UserError as exc:
        if not world.distributed:
            raise
        refusal = exc
    message = broadcast(None if refusal is None else str(refusal), world)
    if refusal is not None:
        raise refusal
    if message is not None:
        import click

        raise click.exceptions.Exit(2)


def barrier(world: World) -> None:
    """Wait for every rank."""
    if world.distributed:
        import torch.distributed as dist

        dist.barrier()


def _initialized() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.replace(value, **{f.name: _to_cpu(getattr(value, f.name))
                                             for f in dataclasses.fields(value) if f.init})
    return value
