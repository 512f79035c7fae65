"""Shared pytest configuration: deterministic seeds and a headless matplotlib."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_configure(config) -> None:
    """One torch thread: on a shared 2-core machine two threads oversubscribe the cores and a
    forward+backward can take 30x longer; one thread keeps the suite's time predictable."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_everything():
    import torch

    torch.manual_seed(0)
    yield
