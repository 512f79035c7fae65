"""SEA (Croce, Singh & Hein, ECCV 2024): the attack contract, its schedule, its worst case over
its single-loss runs, and ``robustcv attack --task segmentation --attack sea`` end to end."""
from __future__ import annotations

import pytest
import torch

from attack_helpers import TinySegmenter
from attacks import SEA, get_attack
from attacks.losses import class_balance_weights, masked_balanced_cross_entropy, masked_cross_entropy, masked_spherical
from attacks.objectives import Classification, Segmentation
from attacks.sea import DEFAULT_LOSSES, member_specs, parse_losses, stage_steps

IGNORE = 255
EPS = 8 / 255


def _batch(n: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 6, 6, generator=g)
    y = torch.randint(0, 4, (n, 6, 6), generator=g)
    y[:, :1] = IGNORE
    return x, y


def _right(model, x_adv, y) -> torch.Tensor:
    with torch.no_grad():
        return Segmentation(ignore_index=IGNORE).hit_fraction(model(x_adv), y)


def test_schedule_splits_300_steps_as_published():
    assert stage_steps(300) == [90, 90, 120]
    assert sum(stage_steps(7)) == 7 and stage_steps(1) == [0, 0, 1]
    assert parse_losses("mce-bal+mce+js") == DEFAULT_LOSSES
    from robustcv.tasks.segmentation import SEA_ATTACKS

    assert tuple(member_specs()) == SEA_ATTACKS
    assert member_specs(steps=6) == ["sea(losses=mce-bal, steps=6)", "sea(losses=mce, steps=6)",
                                     "sea(losses=js, steps=6)"]


def test_contract_ball_box_no_in_place_and_batch_independent_keys():
    model, (x, y) = TinySegmenter(), _batch()
    x_before = x.clone()
    attack = SEA(steps=8, seed=3)
    keys = torch.arange(10, 14)
    x_adv = attack(model, x, y, EPS, keys=keys)
    assert torch.equal(x, x_before) and x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert (x_adv - x).abs().max() <= EPS + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert torch.equal(attack(model, x, y, EPS, keys=keys), x_adv)  # deterministic under a seed
    assert torch.allclose(attack(model, x[2:], y[2:], EPS, keys=keys[2:]), x_adv[2:])  # its batch does not matter
    assert torch.equal(attack(model, x, y, 0.0), x)
    l2 = SEA(norm="l2", steps=4, seed=0)(model, x, y, 0.5)
    assert ((l2 - x).flatten(1).norm(dim=1) <= 0.5 + 1e-5).all()


def test_sea_is_per_image_the_worst_of_its_single_loss_runs():
    model, (x, y) = TinySegmenter(), _batch(6, seed=1)
    keys = torch.arange(6)
    clean = _right(model, x, y)
    sea = _right(model, SEA(steps=12, seed=0)(model, x, y, EPS, keys=keys), y)
    singles = torch.stack([_right(model, SEA(steps=12, losses=name, seed=0)(model, x, y, EPS, keys=keys), y)
                           for name in DEFAULT_LOSSES])
    assert torch.allclose(sea, singles.amin(0))
    assert (sea < clean).any() and (sea <= clean).all()


def test_sea_lowers_more_pixels_than_apgd_ce_with_the_same_steps():
    model, (x, y) = TinySegmenter(), _batch(6, seed=2)
    objective = Segmentation(ignore_index=IGNORE)
    apgd = get_attack("apgd", steps=12, objective=objective, seed=0)(model, x, y, EPS)
    sea = SEA(steps=12, objective=objective, seed=0)(model, x, y, EPS)
    assert _right(model, sea, y).mean() <= _right(model, apgd, y).mean() + 1e-6


def test_balanced_and_spherical_losses_follow_their_formulas():
    x, y = _batch()
    logits = TinySegmenter()(x)
    weights = class_balance_weights(y, IGNORE)
    torch.testing.assert_close(weights.flatten(1).sum(1), torch.ones(len(y)))
    for i in range(len(y)):  # each class present weighs 1 / (number of classes present)
        present = y[i][y[i] != IGNORE].unique()
        for c in present:
            assert float(weights[i][y[i] == c].sum()) == pytest.approx(1 / len(present))
    balanced = masked_balanced_cross_entropy(logits, y, IGNORE)
    one_class = torch.zeros_like(y)
    torch.testing.assert_close(masked_balanced_cross_entropy(logits, one_class, None),
                               masked_cross_entropy(logits, one_class, None))  # one class: no balancing
    assert balanced.shape == (4,) and (balanced >= 0).all()
    unit = logits / logits.norm(dim=1, keepdim=True)
    own = unit.gather(1, y.masked_fill(y == IGNORE, 0)[:, None]).squeeze(1)
    pending = (logits.argmax(1) == y) & (y != IGNORE)
    expected = torch.stack([(-own[i][pending[i]]).sum() / (y[i] != IGNORE).sum() for i in range(4)])
    torch.testing.assert_close(masked_spherical(logits, y, IGNORE), expected)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="Segmentation objective"):
        SEA(objective=Classification())
    with pytest.raises(ValueError, match="unknown loss"):
        SEA(losses="mce+nope")
    with pytest.raises(ValueError, match="linf or l2"):
        SEA(norm="l1")
    with pytest.raises(ValueError, match="steps"):
        SEA(steps=0)
    with pytest.raises(ValueError, match="start"):
        SEA(start=-1)


def test_start_one_restarts_elsewhere_under_the_same_seed():
    """``start=1`` (the default segmentation evaluation's second SEA member) starts from the
    seeded generator's second draw: another result, as deterministic and batch-independent."""
    model, (x, y) = TinySegmenter(), _batch()
    keys = torch.arange(4)
    first, second = (SEA(steps=2, losses="mce-bal", seed=0, start=k) for k in (0, 1))
    x0, x1 = first(model, x, y, EPS, keys=keys), second(model, x, y, EPS, keys=keys)
    assert not torch.allclose(x0, x1) and ((x1 - x).abs() <= EPS + 1e-6).all()
    assert torch.equal(second(model, x, y, EPS, keys=keys), x1)
    assert torch.allclose(second(model, x[1:], y[1:], EPS, keys=keys[1:]), x1[1:])
    assert "start=1" in repr(second) and "start" not in repr(first)


@pytest.fixture(scope="module")
def shapes_unet(tmp_path_factory):
    """The default shapes U-Net, trained one short epoch (the plumbing, not its strength)."""
    from robustcv.checkpoint import save_checkpoint
    from robustcv.data import DataSpec, get_dataset
    from robustcv.models import ModelSpec
    from robustcv.training import Recipe
    from robustcv.training.trainer import fit

    torch.set_num_threads(1)
    data = DataSpec("shapes", task="segmentation")
    splits = get_dataset(data)
    splits.train = torch.utils.data.Subset(splits.train, range(64))
    model, meta = fit(splits, data, ModelSpec("unet"), Recipe(epochs=1, batch_size=32, augment="none"),
                      device=torch.device("cpu"), show_progress=False)
    meta.name = "unet-sea"
    return save_checkpoint(tmp_path_factory.mktemp("models") / "unet-sea", model, meta)


@pytest.mark.slow  # ~40 s on two shared cores, most of it the run's fixed work, not SEA
def test_cli_runs_sea_on_the_shapes_segmenter_and_its_members_fold_to_a_lower_miou(shapes_unet, tmp_path, capsys):
    """``--attack sea`` runs and reports; its single-loss members, run as attacks, fold by SEA's
    greedy rule to a worst-case mIoU at or below each member's."""
    import json

    from robustcv.cli import main

    specs = ["sea(steps=2)", *member_specs("mce+js", steps=2)]
    out, report = tmp_path / "run", tmp_path / "report"
    code = main(["attack", "--task", "segmentation", "--checkpoint", str(shapes_unet), "--n", "2",
                 "--attack", ",".join(specs), "--eps", "0,0.03", "--natural", "none", "--out", str(out),
                 "--report-dir", str(report), "-q"])
    captured = capsys.readouterr()
    assert code == 0 and "robust mIoU" in captured.out, captured.err
    records = json.loads((out / "results.json").read_text())["records"]
    miou = {r["attack"]: r["value"] for r in records if r["metric"] == "miou" and r["eps"] == 0.03}
    assert set(specs) | {"worst-case"} <= set(miou)
    assert all(miou["worst-case"] <= miou[s] + 1e-9 for s in specs)
    assert "sea(steps=2)" in (report / "report.md").read_text()


def test_sea_on_a_classifier_is_a_one_line_user_error():
    from robustcv.errors import UserError
    from robustcv.evaluation.attacking import build_attack
    from robustcv.evaluation.config import EvalConfig

    with pytest.raises(UserError, match="needs a Segmentation objective") as info:
        build_attack("sea", EvalConfig(attacks=["sea"]), Classification())
    assert "\n" not in str(info.value)
