"""A torchrun worker for tests/test_distributed.py: rank 1 fails while rank 0 waits on a gather."""
from __future__ import annotations

import sys

import torch

from robustcv import distributed
from robustcv.errors import UserError


def main() -> int:
    world, _ = distributed.setup(torch.device("cpu"))
    try:
        if world.rank == 1:
            raise UserError("bad data in shard 1")
        distributed.gather(torch.ones(3), world)  # never completes: rank 1 is gone
    except UserError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
