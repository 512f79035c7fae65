"""Training faults: hyperparameters that cannot train, a loss that turns non-finite, splits too
small to train on, batches BatchNorm cannot use. Each is one line and exit 2, and leaves no
checkpoint behind."""
from __future__ import annotations

from typing import NamedTuple

import pytest

from fault_helpers import assert_one_line, image_folder, run_cli


class Refused(NamedTuple):
    flag: str
    value: str
    words: tuple[str, ...]


# Not finite, or below the range the optimizer, loss or schedule accepts. (A huge --lr is accepted:
# it is caught when the loss turns non-finite, below.)
HYPERPARAMETERS = [
    Refused("--lr", "nan", ("--lr", "finite")),
    Refused("--lr", "inf", ("--lr", "finite")),
    Refused("--momentum", "nan", ("--momentum", "finite")),
    Refused("--weight-decay", "nan", ("--weight-decay", "finite")),
    Refused("--weight-decay", "-1", ("--weight-decay", ">= 0")),
    Refused("--label-smoothing", "nan", ("--label-smoothing", "finite")),
    Refused("--mixup", "nan", ("--mixup", "finite")),
    Refused("--focal-gamma", "nan", ("--focal-gamma", "finite")),
    Refused("--backbone-lr-scale", "nan", ("--backbone-lr-scale", "finite")),
    Refused("--trades-beta", "nan", ("--trades-beta", "finite")),
]


@pytest.mark.parametrize("case", HYPERPARAMETERS, ids=[f"{c.flag} {c.value}" for c in HYPERPARAMETERS])
def test_degenerate_hyperparameters_are_refused(case, tmp_path, capsys):
    models = tmp_path / "models"
    code, _, err = run_cli(capsys, "train", case.flag, case.value, "--epochs", "1", "--models-dir", models, "-q")
    assert_one_line(code, err, *case.words)
    assert not models.exists()


def test_a_loss_that_turns_non_finite_stops_training_without_a_checkpoint(tmp_path, capsys):
    models = tmp_path / "models"
    code, _, err = run_cli(capsys, "train", "--lr", "1e10", "--epochs", "1", "--models-dir", models, "-q")
    assert_one_line(code, err, "training diverged", "nan", "no checkpoint", "--lr")
    assert not models.exists() or not any(models.iterdir())


class TooSmall(NamedTuple):
    name: str
    per_class: int
    args: tuple[str, ...]
    words: tuple[str, ...]


SPLITS = [
    TooSmall("empty validation split", 2, ("--val-fraction", "0"), ("empty validation split", "--val-fraction")),
    TooSmall("validation split rounded to nothing", 2, (), ("empty validation split",)),
    TooSmall("empty test split", 2, ("--test-fraction", "0.1", "--val-fraction", "0.5"),
             ("empty test split", "--test-fraction")),
    TooSmall("BatchNorm with --batch-size 1", 6, ("--batch-size", "1", "--model", "resnet18"),
             ("--batch-size 1", "BatchNorm", "--batch-size 2")),
]


@pytest.mark.parametrize("case", SPLITS, ids=[c.name for c in SPLITS])
def test_batches_and_splits_too_small_to_train_are_refused(case, tmp_path, capsys):
    folder = image_folder(tmp_path / "imgs", per_class=case.per_class, classes={"a": (200, 0, 0), "b": (0, 0, 200)})
    models = tmp_path / "models"
    code, _, err = run_cli(capsys, "train", "--dataset", f"imagefolder:{folder}", "--image-size", "16",
                           "--epochs", "1", "--models-dir", models, "-q", *case.args)
    assert_one_line(code, err, *case.words)
    assert not models.exists() or not any(models.iterdir())


def test_batch_norm_with_batch_size_1_trains_where_each_channel_sees_several_values(tmp_path, capsys):
    """The refusal is exact: small_cnn's BatchNorm sees 16x16 values per channel even in a batch of one."""
    folder = image_folder(tmp_path / "imgs", per_class=6, classes={"a": (200, 0, 0), "b": (0, 0, 200)})
    code, _, err = run_cli(capsys, "train", "--dataset", f"imagefolder:{folder}", "--image-size", "16",
                           "--epochs", "1", "--batch-size", "1", "--models-dir", tmp_path / "models", "-q")
    assert code == 0, err
