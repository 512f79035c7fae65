"""Shared helpers of the ``test_faults_*`` files: CLI calls, one-line error checks, tiny data.

Every fault test runs the real CLI (``robustcv.cli.main``) on data small enough that a call takes
a second or a few: 16-pixel image folders, untrained digits checkpoints, ``--epochs 1``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from robustcv.cli import main

COLOURS = {"cat": (200, 40, 40), "dog": (40, 200, 40), "fox": (40, 40, 200)}
# A cheap attack run: the fault tests check what is written, not how strong the attack is.
CHEAP_ATTACK = ["--eps", "0,0.1", "--attack", "fgsm", "--natural", "none", "--steps", "2", "--quiet"]


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``robustcv ARGV``: (exit status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line(code: int, err: str, *words: str) -> str:
    """Exit status 2 and exactly one ``Error: ...`` line on stderr holding every word; no traceback."""
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("Error: "), (code, err)
    for word in words:
        assert word.lower() in lines[0].lower(), (word, lines[0])
    return lines[0]


def image_folder(root: Path, per_class: int = 10, classes: dict[str, tuple[int, int, int]] = COLOURS,
                 size: int = 16) -> Path:
    """``root/<class>/<i>.png``: noisy squares of one colour per class (learnt in one epoch)."""
    rng = np.random.default_rng(0)
    for name, colour in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def digits_checkpoint(directory: Path, edit: Callable[[torch.nn.Module], None] | None = None) -> Path:
    """An untrained digits ``small_cnn`` checkpoint, its weights changed by ``edit`` first."""
    from robustcv.checkpoint import ModelMetadata, save_checkpoint
    from robustcv.data import DataSpec, get_dataset
    from robustcv.models import ModelSpec, build_model

    data, spec = DataSpec(name="digits"), ModelSpec(name="small_cnn")
    info = get_dataset(data).info
    net = build_model(spec, info)
    if edit is not None:
        with torch.no_grad():
            edit(net)
    return save_checkpoint(directory, net, ModelMetadata(name=directory.name, data=data, data_info=info, model=spec))


def only_child(folder: Path) -> Path:
    """The one visible entry of ``folder`` (a checkpoint in a models folder)."""
    (child,) = [p for p in folder.iterdir() if not p.name.startswith(".")]
    return child
