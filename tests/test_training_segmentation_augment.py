"""Segmentation augmentation: image and mask move together under every policy."""
from __future__ import annotations

import pytest
import torch

from robustcv.data.base import DataInfo
from robustcv.tasks import Task
from robustcv.training.augment import POLICY_HELP, AugmentedDataset, build_augmentation

IGNORE = 255


class _SquareSet(torch.utils.data.Dataset):
    """A bright square on black with the square's class in the mask (class 1), background 0."""

    def __len__(self) -> int:
        return 16

    def __getitem__(self, index: int):
        g = torch.Generator().manual_seed(index)
        top, left = (int(v) for v in torch.randint(6, 18, (2,), generator=g))
        image = torch.zeros(3, 32, 32)
        image[:, top:top + 9, left:left + 9] = 1.0
        mask = torch.zeros(32, 32, dtype=torch.long)
        mask[top:top + 9, left:left + 9] = 1
        return image, mask


INFO = DataInfo(name="squares", task=Task.SEGMENTATION, classes=("background", "square"), channels=3,
                image_size=(32, 32), mean=(0.5,) * 3, std=(0.25,) * 3, ignore_index=IGNORE)


@pytest.mark.parametrize("policy", sorted(POLICY_HELP))
def test_mask_follows_the_image_under_every_policy(policy):
    dataset = AugmentedDataset(_SquareSet(), build_augmentation(policy, INFO), INFO.task)
    torch.manual_seed(0)
    for index in range(len(dataset)):
        image, mask = dataset[index]
        assert mask.shape == image.shape[-2:] and mask.dtype == torch.long
        assert set(mask.unique().tolist()) <= {0, 1, IGNORE}
        bright = image.mean(0) > 0.5
        # Away from the edges (where interpolation blurs the border), square pixels are bright.
        inner = torch.nn.functional.max_pool2d((mask != 1).float()[None, None], 5, 1, 2)[0, 0] == 0
        outer = torch.nn.functional.max_pool2d((mask == 1).float()[None, None], 5, 1, 2)[0, 0] == 0
        outer &= mask == 0
        if policy != "strong":  # RandomErasing blanks image patches only
            assert bright[inner].all()
        assert not bright[outer].any() if policy in ("none", "basic") else bright[outer].float().mean() < 0.05


def test_uncovered_pixels_are_ignored_not_background():
    dataset = AugmentedDataset(_SquareSet(), build_augmentation("strong", INFO), INFO.task)
    torch.manual_seed(1)
    seen = torch.cat([dataset[i][1].flatten() for i in range(len(dataset))])
    assert (seen == IGNORE).any()  # shifted/rotated borders are unlabelled
