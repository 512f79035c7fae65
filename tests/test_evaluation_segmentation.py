"""Segmenters under attack: per-image confusion matrices, the worst case over attacks, the
monotone sweep, and the attack stage end to end on a small U-Net."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from attacks.objectives import Segmentation
from robustcv.metrics import segmentation
from robustcv.evaluation.outcome import OutcomeBuilder, worst_case
from robustcv.metrics.segmentation import image_confusions, miou, pixel_accuracy

K = 4


def _random_masks(n: int, k: int = K, size: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, size, size, generator=g)
    y = torch.randint(0, k - 1, (n, size, size), generator=g)  # class k-1 absent from the truth
    y[:, 0, :] = 255
    return logits, y


def test_image_confusions_sum_to_torchmetrics_matrix():
    from torchmetrics.classification import MulticlassConfusionMatrix

    logits, y = _random_masks(5)
    ours = image_confusions(logits, y, K, 255)
    reference = MulticlassConfusionMatrix(num_classes=K, ignore_index=255)(logits.argmax(1), y)
    assert ours.shape == (5, K, K)
    assert torch.equal(ours.sum(0), reference)
    assert int(ours.sum()) == int((y != 255).sum())


def test_miou_and_pixel_accuracy_match_a_direct_numpy_computation():
    logits, y = _random_masks(4, seed=1)
    cm = image_confusions(logits, y, K, 255).sum(0).numpy().astype(float)
    pred, true = logits.argmax(1).numpy(), y.numpy()
    valid = true != 255
    ious = []
    for c in range(K):
        inter = np.sum((pred == c) & (true == c) & valid)
        union = np.sum(((pred == c) | (true == c)) & valid)
        if union:
            ious.append(inter / union)
    assert float(miou(torch.tensor(cm))) == pytest.approx(np.mean(ious))
    assert float(pixel_accuracy(torch.tensor(cm))) == pytest.approx(np.mean(pred[valid] == true[valid]))


def _attack_confusions(attacks: int, n: int, seed: int) -> torch.Tensor:
    per_attack = [image_confusions(*_random_masks(n, seed=seed + a)[:1], _random_masks(n, seed=seed)[1],
                                                K, 255) for a in range(attacks)]
    return torch.stack(per_attack)  # same truth, different predictions per attack


def test_worst_by_pixel_accuracy_takes_each_images_fewest_right_pixels():
    confusions = _attack_confusions(3, 6, seed=2)
    worst = segmentation.worst_by_pixel_accuracy(confusions)
    right = confusions.diagonal(dim1=-2, dim2=-1).sum(-1)  # [A, N]
    assert torch.equal(worst.diagonal(dim1=-2, dim2=-1).sum(-1), right.min(0).values)
    # The aggregate is a sum, so the per-image choice is the optimum over all assignments.
    best = min(float(pixel_accuracy(confusions[list(c), range(6)].sum(0)))
               for c in itertools.product(range(3), repeat=6))
    assert float(pixel_accuracy(worst.sum(0))) == pytest.approx(best)


def test_greedy_worst_miou_beats_every_single_attack_and_is_a_local_optimum():
    confusions = _attack_confusions(3, 7, seed=3)
    worst = segmentation.worst_by_miou(confusions)
    value = float(miou(worst.sum(0)))
    singles = miou(confusions.sum(1))
    assert value <= float(singles.min()) + 1e-12
    # No single image can switch to another attack and lower the dataset mIoU further.
    for i in range(7):
        for a in range(3):
            switched = worst.sum(0) - worst[i] + confusions[a, i]
            assert float(miou(switched)) >= value - 1e-12
    # And it is close to the exhaustive optimum on this small case.
    exhaustive = min(float(miou(confusions[list(c), range(7)].sum(0)))
                     for c in itertools.product(range(3), repeat=7))
    assert value <= exhaustive + 0.02


def test_sweep_keeps_the_worse_adversarial_per_image_so_pixel_accuracy_is_monotone():
    """A later eps whose attempt the model does better on must not replace the kept one."""
    _, y = _random_masks(3, seed=4)
    x = torch.rand(3, 1, 6, 6)
    bad = torch.nn.functional.one_hot((y.clamp(max=K - 1) + 1) % K, K).permute(0, 3, 1, 2).float()
    good = torch.nn.functional.one_hot(y.clamp(max=K - 1), K).permute(0, 3, 1, 2).float()
    builder = OutcomeBuilder("pgd", False, [0.0, 0.1, 0.2], "linf", 1, objective=Segmentation())
    builder.add_batch(x, y, [x, x + 0.05, x + 0.1], [good, bad, good], None, [0.0] * 3)
    outcome = builder.build()
    scores = outcome.scores()
    assert scores[0] == 1.0 and scores[1] == 0.0 and scores[2] == 0.0
    assert torch.allclose(outcome.linf[2], torch.full((3,), 0.05))  # the eps-0.1 adversarial was kept
    both = worst_case([outcome, outcome])
    assert both.scores() == scores


@pytest.fixture(scope="module")
def unet_checkpoint(tmp_path_factory):
    """A U-Net trained one short epoch on shapes' masks (mostly background: it tests the plumbing;
    the slow test below attacks a fully trained one), saved as a checkpoint."""
    from robustcv.checkpoint import save_checkpoint
    from robustcv.data import DataSpec, get_dataset
    from robustcv.models import ModelSpec
    from robustcv.training import Recipe
    from robustcv.training.trainer import fit

    torch.set_num_threads(1)
    data = DataSpec("shapes", task="segmentation")
    splits = get_dataset(data)
    splits.train = torch.utils.data.Subset(splits.train, range(256))
    model, meta = fit(splits, data, ModelSpec("unet"), Recipe(epochs=1, batch_size=32, augment="none"),
                      device=torch.device("cpu"), show_progress=False)
    meta.name = "unet-tiny"
    return save_checkpoint(tmp_path_factory.mktemp("models") / "unet-tiny", model, meta)


@pytest.fixture(scope="module")
def attacked(unet_checkpoint, tmp_path_factory):
    from robustcv.evaluation.config import EvalConfig
    from robustcv.tasks.segmentation import DEFAULT_ATTACKS as DEFAULT_SEGMENTATION_ATTACKS
    from robustcv.evaluation.orchestrator import run_attack_stage

    attacks = [a.replace("steps=100", "steps=4") for a in DEFAULT_SEGMENTATION_ATTACKS]  # SEA's members, short
    config = EvalConfig(attacks=attacks, eps=[0.0, 0.02, 0.1], headline_eps=0.02,
                        steps=3, apgd_steps=4, n=8, natural=[], batch_size=4, gallery=2)
    out = tmp_path_factory.mktemp("run")
    return run_attack_stage(unet_checkpoint, config, out, device=torch.device("cpu"), show_progress=False), out


def _values(results, metric: str, attack: str) -> list[float]:
    return [r.value for r in sorted(results.records, key=lambda r: r.eps)
            if r.metric == metric and r.attack == attack and r.cls is None]


def test_attack_stage_records_miou_per_attack_and_a_worst_case_below_each(attacked):
    results, _ = attacked
    attacks = ["fgsm", "pgd", "segpgd", "cospgd", "sea(losses=mce-bal,steps=4)", "sea(losses=mce-bal,steps=4,start=1)"]
    worst = _values(results, "miou", "worst-case")
    assert len(worst) == 3
    for attack in attacks:
        curve = _values(results, "miou", attack)
        assert len(curve) == 3
        assert all(w <= c + 1e-9 for w, c in zip(worst, curve))
        pixels = _values(results, "pixel_accuracy", attack)
        assert all(b <= a + 1e-9 for a, b in zip(pixels, pixels[1:]))  # monotone by construction
    clean = next(r.value for r in results.records if r.metric == "clean_miou")
    assert worst[0] == pytest.approx(clean)
    assert any(r.metric == "class_iou" and r.cls == "background" for r in results.records)
    assert not any(r.metric == "robust_accuracy" for r in results.records)


def test_clean_miou_equals_the_training_metrics_on_the_same_images(attacked, unet_checkpoint):
    from robustcv.checkpoint import load_model
    from robustcv.evaluation.samples import select_samples
    from robustcv.metrics import SegmentationState

    results, _ = attacked
    model, meta = load_model(unet_checkpoint)
    samples, info = select_samples(meta, 8, results.run["seed"])
    with torch.no_grad():
        state = SegmentationState(info.classes).update(model(samples.x), samples.y)
    clean = next(r.value for r in results.records if r.metric == "clean_miou")
    assert clean == pytest.approx(state.compute()["miou"], abs=1e-6)


def test_gallery_writes_the_three_masks_per_example(attacked):
    results, out = attacked
    assert len(results.gallery) == 2
    for item in results.gallery:
        for path in (item.truth_mask_path, item.clean_mask_path, item.adversarial_mask_path):
            assert (out / path).stat().st_size > 0
        assert 0.0 <= item.adv_conf <= 1.0


def test_segmentation_report_speaks_of_miou(attacked, tmp_path):
    from robustcv.report import render_report

    _, out = attacked
    paths = render_report([out], tmp_path / "report", formats=("md",))
    text = paths["md"].read_text()
    assert "Robust mIoU (worst case)" in text and "True mask" in text and "mIoU" in text.split("Verdict")[1]


@pytest.mark.slow
def test_default_segmenter_loses_miou_under_attack_and_passes_the_checks(tmp_path):
    """The README's segmentation job: the default U-Net (trained as ``robustcv train --task
    segmentation`` does) loses most of its mIoU at eps 8/255, the worst case is at or below every
    attack, and every sanity check passes."""
    from robustcv.data import DataSpec
    from robustcv.evaluation.config import EvalConfig
    from robustcv.tasks.segmentation import DEFAULT_ATTACKS as DEFAULT_SEGMENTATION_ATTACKS
    from robustcv.evaluation.orchestrator import run_attack_stage
    from robustcv.models import ModelSpec
    from robustcv.training import Recipe, ensure_trained

    checkpoint = ensure_trained(DataSpec("shapes", task="segmentation"), ModelSpec("unet"), Recipe(),
                                models_dir=tmp_path / "models", device=torch.device("cpu"), show_progress=False)
    config = EvalConfig(attacks=list(DEFAULT_SEGMENTATION_ATTACKS), eps=[0.0, 2 / 255, 8 / 255], headline_eps=8 / 255,
                        n=64, natural=[], batch_size=32, gallery=2)
    results = run_attack_stage(checkpoint.checkpoint, config,
                               tmp_path / "run", device=torch.device("cpu"), show_progress=False)
    clean = next(r.value for r in results.records if r.metric == "clean_miou")
    worst = _values(results, "miou", "worst-case")
    assert clean > 0.8 and worst[-1] < 0.5 * clean, (clean, worst)
    failed = [c for c in results.sanity_checks if not c.passed]
    assert not failed, failed


@pytest.mark.parametrize("kind, value", [("translate", (2, -1)), ("rotate", 90.0)])
def test_geometric_sweeps_move_the_mask_with_the_image(kind, value):
    """A model that predicts a pixel's class from its colour stays perfect when the mask moves with
    the image; uncovered pixels are ignored."""
    from attacks.natural import get_natural

    y = torch.randint(0, 3, (2, 8, 8))
    x = torch.nn.functional.one_hot(y, 3).permute(0, 3, 1, 2).float()  # colour channel = class
    transform = get_natural(kind)
    moved_x, moved_y = transform.apply(x, value), transform.apply_mask(y, value, 255)
    valid = moved_y != 255
    assert valid.float().mean() > 0.5
    assert torch.equal(moved_x.argmax(1)[valid], moved_y[valid])
    assert torch.equal(transform.apply_mask(y, 0 if kind == "rotate" else (0, 0), 255), y)


def test_segmentation_natural_sweep_records_miou(unet_checkpoint):
    from robustcv.checkpoint import load_model
    from robustcv.evaluation.config import EvalConfig
    from robustcv.evaluation.natural import natural_records
    from robustcv.evaluation.samples import select_samples
    from robustcv.tasks import get_task

    model, meta = load_model(unet_checkpoint)
    samples, info = select_samples(meta, 6, 0)
    objective = get_task(info.task).objective(info)
    config = EvalConfig(natural=["translate", "brightness"], n=6, batch_size=4)
    records = natural_records(meta.name, model, samples, objective, config, torch.device("cpu"))
    shifts = [r.value for r in records if r.attack == "natural:translate" and r.metric == "pixel_accuracy"]
    assert len(shifts) == 4  # shifts 0, 1, 2, 3
    assert {r.metric for r in records} == {"miou", "pixel_accuracy"}
    from robustcv.metrics import SegmentationState

    with torch.no_grad():
        clean = SegmentationState(info.classes).update(model(samples.x), samples.y).compute()["pixel_accuracy"]
    assert shifts[0] == pytest.approx(clean, abs=1e-6)  # shift 0 is the clean image


def test_cli_attacks_a_segmenter_end_to_end(unet_checkpoint, tmp_path, capsys):
    """``robustcv attack --task segmentation``: the default segmentation attacks, a natural sweep,
    results.json with mIoU records and a report that reads them."""
    import json

    from robustcv.cli import main

    out, report = tmp_path / "run", tmp_path / "report"
    code = main(["attack", "--task", "segmentation", "--checkpoint", str(unet_checkpoint), "--n", "4",
                 "--steps", "2", "--apgd-steps", "2", "--eps", "0,0.03", "--natural", "translate", "--out", str(out),
                 "--report-dir", str(report), "-q"])
    captured = capsys.readouterr()
    assert code == 0 and "robust mIoU" in captured.out, captured.err
    data = json.loads((out / "results.json").read_text())
    attacks = {r["attack"] for r in data["records"] if r["metric"] == "miou"}
    assert {"segpgd", "cospgd", "sea(losses=mce-bal,steps=100,start=1)", "worst-case", "natural:translate"} <= attacks
    assert "Robust mIoU" in (report / "report.md").read_text()


def test_targeted_run_records_the_share_of_pixels_sent_to_the_target(unet_checkpoint, tmp_path):
    """``--targeted 0`` (every valid pixel to background): the share of pixels predicted as the
    target is recorded per attack and eps, from the clean share at eps 0 upward."""
    from robustcv.checkpoint import load_model
    from robustcv.evaluation.config import EvalConfig
    from robustcv.evaluation.orchestrator import run_attack_stage
    from robustcv.evaluation.samples import select_samples

    config = EvalConfig(attacks=["pgd"], eps=[0.0, 0.1], headline_eps=0.1, steps=3, n=4, natural=[],
                        batch_size=4, targeted="0", gallery=0)
    results = run_attack_stage(unet_checkpoint, config, tmp_path / "run", device=torch.device("cpu"),
                               show_progress=False)
    shares = _values(results, "target_pixel_share", "pgd")
    model, meta = load_model(unet_checkpoint)
    samples, _ = select_samples(meta, 4, 0)
    with torch.no_grad():
        pred = model(samples.x).argmax(1)
    valid = samples.y != 255
    assert shares[0] == pytest.approx(float((pred[valid] == 0).float().mean()), abs=1e-6)
    assert len(shares) == 2 and 0.0 <= shares[1] <= 1.0


def test_class_to_class_run_records_the_share_of_the_source_pixels_reaching_the_target(unet_checkpoint, tmp_path):
    """``--targeted A:B``: only class A's pixels are aimed at B (the others at their own label);
    the recorded share counts class A's pixels predicted as B, from the clean share upward."""
    from robustcv.checkpoint import load_model
    from robustcv.evaluation.config import EvalConfig
    from robustcv.evaluation.orchestrator import run_attack_stage
    from robustcv.evaluation.samples import run_targets, select_samples

    model, meta = load_model(unet_checkpoint)
    samples, info = select_samples(meta, 4, 0)
    source = int(samples.y[(samples.y != 0) & (samples.y != 255)][0])  # a shape class among the images
    config = EvalConfig(attacks=["pgd"], eps=[0.0, 0.1], headline_eps=0.1, steps=3, n=4, natural=[],
                        batch_size=4, targeted=f"{source}:0", gallery=0)
    targets = run_targets(model, samples, config, info.num_classes, torch.device("cpu"), info.ignore_index)
    assert torch.equal(targets, torch.where(samples.y == source, torch.zeros_like(samples.y), samples.y))
    results = run_attack_stage(unet_checkpoint, config, tmp_path / "run", device=torch.device("cpu"),
                               show_progress=False)
    shares = _values(results, "target_pixel_share", "pgd")
    with torch.no_grad():
        pred = model(samples.x).argmax(1)
    assert shares[0] == pytest.approx(float((pred[samples.y == source] == 0).float().mean()), abs=1e-6)
    assert shares[1] >= shares[0]


@pytest.mark.parametrize("text, words", [("2:2", "to itself"), ("1:9", "0..5"), ("1:2:3", "SOURCE:TARGET")])
def test_bad_class_to_class_targets_are_one_line(unet_checkpoint, text, words, capsys):
    from fault_helpers import assert_one_line, run_cli

    code, _, err = run_cli(capsys, "attack", "--checkpoint", unet_checkpoint, "--targeted", text, "--no-report", "-q")
    assert_one_line(code, err, words)


def test_report_names_the_eps_where_segpgd_is_above_pgd():
    from robustcv.report.queries import Series, weaker_than_pgd

    def curve(attack, ys):
        return Series(attack, "r", "m", "none", attack, False, (0.0, 0.01, 0.03), ys)

    notes = weaker_than_pgd([curve("pgd", (0.9, 0.5, 0.2)), curve("segpgd", (0.9, 0.6, 0.1))])
    assert notes == ["segpgd: above PGD at eps 0.01"]
    assert weaker_than_pgd([curve("pgd", (0.9, 0.5, 0.2)), curve("segpgd", (0.9, 0.4, 0.2))]) == []


def test_default_attacks_run_sea_members_where_sea_runs_and_apgd_elsewhere():
    """Untargeted L∞/L2: two 100-step SEA members (class-balanced loss, two random starts);
    targeted or L1 runs, which SEA refuses, keep APGD with SEA's masked-CE and JS losses."""
    from robustcv.evaluation.attacking import build_attack
    from robustcv.evaluation.config import EvalConfig
    from robustcv.plan import has_step_for
    from robustcv.tasks import get_task

    task = get_task("segmentation")
    sea = task.default_attacks(4)
    assert sea[-2:] == ["sea(losses=mce-bal,steps=100)", "sea(losses=mce-bal,steps=100,start=1)"]
    assert task.default_attacks(4, norm="l2") == sea
    for targeted, norm in (("0", "linf"), ("none", "l1")):
        attacks = task.default_attacks(4, targeted, norm)
        assert attacks[-2:] == ["apgd(loss=mce)", "apgd(loss=js)"]
        runnable = [spec for spec in attacks if has_step_for(spec, norm)]  # the plan drops FGSM/PGD under L1
        assert runnable[-2:] == ["apgd(loss=mce)", "apgd(loss=js)"]
        config = EvalConfig(attacks=runnable, eps=[0.0, 0.1], norm=norm, targeted=targeted)
        for spec in runnable:
            assert build_attack(spec, config, task.objective(_Info())).norm.value == norm


class _Info:
    ignore_index = 255
