"""The synthetic ``shapes`` dataset: determinism, balance, masks and the segmentation task."""
from __future__ import annotations

import pytest
import torch

from robustcv.data import DataSpec, as_tensors, get_dataset
from robustcv.data.shapes import IGNORE_INDEX, SHAPE_CLASSES, generate_shapes
from robustcv.tasks import Task


@pytest.fixture(scope="module")
def small():
    return generate_shapes(n=200, size=32, seed=0)


def test_same_seed_same_tensors_other_seed_different(small):
    again = generate_shapes(n=200, size=32, seed=0)
    other = generate_shapes(n=200, size=32, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(small, again))
    assert not torch.equal(small.images, other.images)


def test_classes_are_balanced(small):
    assert torch.bincount(small.labels).tolist() == [40] * len(SHAPE_CLASSES)


def test_masks_label_the_shape_the_image_shows(small):
    images = small.images.float() / 255
    for image, mask, label in zip(images, small.masks, small.labels):
        values = set(mask.unique().tolist())
        assert values <= {0, int(label) + 1, IGNORE_INDEX}
        inside, outside = mask == label + 1, mask == 0
        assert inside.sum() >= 20  # the smallest shape still covers a real area
        # The shape is a solid colour (plus noise) that stands out from the textured background.
        fg = image[:, inside]
        assert fg.std(dim=1).max() < 0.1
        assert (fg.mean(dim=1) - image[:, outside].mean(dim=1)).abs().max() > 0.15
    band = (small.masks == IGNORE_INDEX).float().mean()
    assert 0 < band < 0.1  # only a thin boundary band is ignored


@pytest.fixture(scope="module")
def classification():
    return get_dataset(DataSpec(name="shapes", seed=0))


@pytest.fixture(scope="module")
def segmentation():
    return get_dataset(DataSpec(name="shapes", seed=0, task="segmentation"))


def test_classification_splits_and_info(classification):
    info = classification.info
    assert info.task == Task.CLASSIFICATION and info.classes == SHAPE_CLASSES
    assert (info.channels, info.image_size, info.hflip_ok, info.ignore_index) == (3, (32, 32), True, None)
    x, y = as_tensors(classification.train)
    assert x.shape[1:] == (3, 32, 32) and 0 <= x.min() and x.max() <= 1 and y.ndim == 1
    sizes = [len(part) for part in (classification.train, classification.val, classification.test)]
    assert sizes == [2160, 240, 600]
    assert torch.bincount(as_tensors(classification.test)[1]).tolist() == [120] * 5
    assert torch.allclose(torch.tensor(info.mean), x.mean(dim=(0, 2, 3)), atol=1e-4)


def test_segmentation_returns_masks_on_the_same_images(segmentation, classification):
    info = segmentation.info
    assert info.task == Task.SEGMENTATION and info.classes == ("background",) + SHAPE_CLASSES
    assert info.ignore_index == IGNORE_INDEX and info.num_classes == 6
    image, mask = segmentation.test[0]
    assert image.shape == (3, 32, 32) and mask.shape == (32, 32) and mask.dtype == torch.int64
    _, masks = as_tensors(segmentation.val)
    assert masks.shape == (240, 32, 32)
    assert torch.equal(as_tensors(classification.test)[0], as_tensors(segmentation.test)[0])
    labels = as_tensors(classification.test)[1]
    masks = as_tensors(segmentation.test)[1]
    assert torch.equal(masks.where(masks != IGNORE_INDEX, 0).flatten(1).amax(1), labels + 1)


def test_image_size_sets_the_rendered_size():
    splits = get_dataset(DataSpec(name="shapes", task="segmentation", image_size=12))
    assert splits.info.image_size == (12, 12) and splits.train[0][1].shape == (12, 12)
