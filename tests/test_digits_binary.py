"""The two-class digits: parity labels on the digits' own images and splits, balanced classes."""
from __future__ import annotations

import pytest
import torch

from robustcv.data import DataSpec, as_tensors
from robustcv.data.digits import build_digits
from robustcv.data.digits_binary import CLASSES, build_digits_binary


@pytest.fixture(scope="module")
def splits():
    return build_digits_binary(DataSpec(name="digits_binary", seed=0))


def test_info(splits):
    info = splits.info
    assert info.name == "digits_binary" and info.task == "binary"
    assert info.classes == CLASSES == ("even", "odd") and info.num_classes == 2
    assert info.channels == 1 and info.image_size == (8, 8) and not info.hflip_ok
    x, _ = as_tensors(splits.train)
    assert info.mean == pytest.approx((float(x.mean()),), abs=1e-5)
    assert info.std == pytest.approx((float(x.std()),), abs=1e-3)


@pytest.mark.parametrize("part", ["train", "val", "test"])
def test_images_and_labels(splits, part):
    x, y = as_tensors(getattr(splits, part))
    assert x.shape[1:] == (1, 8, 8) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert y.dtype == torch.long and set(y.unique().tolist()) == {0, 1}
    assert 0.45 < float(y.float().mean()) < 0.55, "the classes must be balanced"


@pytest.mark.parametrize("seed", [0, 3])
def test_same_images_and_splits_as_digits_with_parity_labels(seed):
    binary = build_digits_binary(DataSpec(name="digits_binary", seed=seed))
    digits = build_digits(DataSpec(name="digits", seed=seed))
    for part in ("train", "val", "test"):
        xb, yb = as_tensors(getattr(binary, part))
        xd, yd = as_tensors(getattr(digits, part))
        assert torch.equal(xb, xd)
        assert torch.equal(yb, yd % 2)
    assert binary.info.mean == digits.info.mean and binary.info.std == digits.info.std


def test_deterministic_and_seeded(splits):
    again = build_digits_binary(DataSpec(name="digits_binary", seed=0))
    other = build_digits_binary(DataSpec(name="digits_binary", seed=1))
    assert torch.equal(as_tensors(again.test)[0], as_tensors(splits.test)[0])
    assert not torch.equal(as_tensors(other.test)[0], as_tensors(splits.test)[0])


def test_split_sizes_follow_the_spec():
    splits = build_digits_binary(DataSpec(name="digits_binary", test_fraction=0.25, val_fraction=0.2))
    sizes = [len(splits.train), len(splits.val), len(splits.test)]
    assert sum(sizes) == 1797 and sizes[2] == round(1797 * 0.25) and sizes[1] == round((1797 - sizes[2]) * 0.2)


def test_a_resize_is_ignored_with_a_warning():
    with pytest.warns(UserWarning, match="fixed 8x8"):
        splits = build_digits_binary(DataSpec(name="digits_binary", image_size=16))
    assert as_tensors(splits.test)[0].shape[2:] == (8, 8)
