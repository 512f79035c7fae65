"""The default segmenter: logits at input resolution for any size, encoder/decoder for freeze plans."""
from __future__ import annotations

import torch

from robustcv.data.base import DataInfo
from robustcv.models import FreezePlan, ModelSpec, build_model
from robustcv.tasks import Task

INFO = DataInfo(name="tiny", task=Task.SEGMENTATION, classes=("bg", "a", "b"), channels=3, image_size=(32, 32),
                mean=(0.5,) * 3, std=(0.25,) * 3, ignore_index=255)


def test_unet_logits_match_input_size_and_learn():
    model = build_model(ModelSpec("unet"), INFO)
    for h, w in ((32, 32), (33, 47)):
        assert model(torch.rand(2, 3, h, w)).shape == (2, 3, h, w)
    x, y = torch.rand(4, 3, 16, 16), torch.randint(0, 3, (4, 16, 16))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]


def test_head_plan_freezes_the_encoder():
    model = build_model(ModelSpec("unet"), INFO)
    FreezePlan.parse("head").apply(model, 0)
    assert not any(p.requires_grad for p in model.net.backbone.parameters())
    assert all(p.requires_grad for p in model.net.head.parameters())
