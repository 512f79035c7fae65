"""Design rule 8: per-sample random draws keyed by (seed, sample index), so numbers do not depend
on the batch a sample lands in."""
from __future__ import annotations

import dataclasses

import torch

from attack_helpers import trained_digits
from attacks import PGD
from attacks.keyed import KeyedGenerator, rand, randn
from attacks.objectives import Classification
from defenses import parse_defense
from robustcv.evaluation.config import EvalConfig
from robustcv.evaluation.defense_run import evaluate_defense
from robustcv.evaluation.samples import Samples


def test_keyed_draws_follow_the_sample_not_the_batch():
    whole = rand((10, 3, 4, 4), KeyedGenerator(7, torch.arange(10)), torch.device("cpu"), torch.float32)
    part = rand((3, 3, 4, 4), KeyedGenerator(7, torch.tensor([8, 2, 5])), torch.device("cpu"), torch.float32)
    assert torch.equal(part, whole[[8, 2, 5]])
    other_seed = rand((10, 3, 4, 4), KeyedGenerator(8, torch.arange(10)), torch.device("cpu"), torch.float32)
    assert not torch.equal(whole, other_seed)
    assert 0.0 <= float(whole.min()) and float(whole.max()) < 1.0
    assert abs(float(whole.mean()) - 0.5) < 0.05


def test_keyed_streams_advance_and_are_shared_with_subsets():
    g = KeyedGenerator(0, torch.arange(4))
    first = rand((4, 8), g, torch.device("cpu"), torch.float32)
    second = rand((2, 8), g.subset(torch.tensor([1, 3])), torch.device("cpu"), torch.float32)
    again = rand((4, 8), KeyedGenerator(0, torch.arange(4)), torch.device("cpu"), torch.float32)
    assert torch.equal(first, again) and not torch.equal(second, first[[1, 3]])


def test_keyed_normal_has_unit_moments():
    z = randn((64, 1024), KeyedGenerator(3, torch.arange(64)), torch.device("cpu"), torch.float32)
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1) < 0.02


def test_pgd_with_keys_is_batch_independent():
    data = trained_digits()
    x, y = data.x[:60], data.y[:60]
    for norm, eps in (("linf", 0.1), ("l2", 1.0)):
        attack = PGD(norm=norm, steps=5, restarts=2, seed=0)
        whole = attack(data.model, x, y, eps, keys=torch.arange(60))
        parts = torch.cat([attack(data.model, x[i:i + 17], y[i:i + 17], eps, keys=torch.arange(i, min(i + 17, 60)))
                           for i in range(0, 60, 17)])
        # Batched convolutions round differently by batch size: L2 steps inherit ~1e-6 noise.
        torch.testing.assert_close(whole, parts, rtol=0, atol=1e-4)


def test_evaluation_is_batch_size_independent():
    data = trained_digits()
    samples = Samples(data.x[:120], data.y[:120])
    config = EvalConfig(attacks=["fgsm", "pgd(restarts=2)"], eps=[0.0, 0.05, 0.1, 0.2], headline_eps=0.1, steps=5,
                        natural=[], batch_size=120)
    runs = [evaluate_defense("none", parse_defense("none"), data.model, samples, Classification(),
                             dataclasses.replace(config, batch_size=size), torch.device("cpu"))
            for size in (120, 50, 7)]
    for run in runs[1:]:
        for a, b in zip(runs[0].outcomes, run.outcomes):
            assert torch.equal(a.correct, b.correct)
