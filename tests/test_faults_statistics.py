"""Statistical faults: accuracies without a sample count or an interval, and differences smaller
than the noise presented as findings. The Wilson interval is checked against statsmodels (when
installed) or scipy; results.json and the report carry it; overlapping figures get a warning."""
from __future__ import annotations

import json

import torch

import pytest

from fault_helpers import CHEAP_ATTACK, digits_checkpoint
from robustcv.cli import main
from robustcv.evaluation.records import PROPORTION_METRICS, attach_intervals
from robustcv.report.queries import Headline
from robustcv.results import Record, RunResults
from robustcv.stats import wilson_interval
from test_report import markdown_table
from test_report_synthetic import make_run

COUNTS = [(0, 1), (1, 1), (0, 10), (8, 10), (10, 10), (4, 4), (1, 3), (50, 100), (413, 500), (9999, 10000)]


def reference_wilson(k: int, n: int) -> tuple[float, float]:
    """An independent implementation: statsmodels' proportion_confint, else scipy's binomtest."""
    try:
        from statsmodels.stats.proportion import proportion_confint
    except ImportError:
        from scipy.stats import binomtest

        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        return ci.low, ci.high
    return proportion_confint(k, n, alpha=0.05, method="wilson")


@pytest.mark.parametrize("k, n", COUNTS, ids=[f"{k}of{n}" for k, n in COUNTS])
def test_wilson_interval_matches_the_reference(k, n):
    assert wilson_interval(k, n) == pytest.approx(reference_wilson(k, n), abs=1e-9)


# Hand-computed from the score formula (z = 1.959964): e.g. 8 of 10 is centred at 0.7167 ± 0.2265.
HAND = [(8, 10, 0.490162, 0.943318), (0, 10, 0.0, 0.277533), (4, 4, 0.510109, 1.0)]


@pytest.mark.parametrize("k, n, low, high", HAND)
def test_wilson_interval_matches_hand_computed_values(k, n, low, high):
    assert wilson_interval(k, n) == pytest.approx((low, high), abs=1e-6)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[RunResults, str]:
    """A real attack run (untrained digits model, 40 samples) with its Markdown report."""
    root = tmp_path_factory.mktemp("stats")
    checkpoint = digits_checkpoint(root / "models" / "ck")
    code = main(["attack", "--checkpoint", str(checkpoint), "--n", "40", "--out", str(root / "run"),
                 "--report-dir", str(root / "report"), *CHEAP_ATTACK])
    assert code == 0
    return RunResults.load(root / "run" / "results.json"), (root / "report" / "report.md").read_text("utf-8")


def test_every_accuracy_in_results_json_carries_n_and_its_interval(run):
    results, _ = run
    accuracies = [r for r in results.records if r.metric in PROPORTION_METRICS]
    assert {r.metric for r in accuracies} >= {"clean_accuracy", "robust_accuracy", "class_robust_accuracy"}
    for r in accuracies:
        assert r.interval == pytest.approx(wilson_interval(round(r.value * r.n), r.n), abs=1e-6), r
        assert r.ci_low <= r.value <= r.ci_high
    assert all(r.interval is None for r in results.records if r.metric not in PROPORTION_METRICS)


def test_report_summary_shows_the_intervals_and_the_sample_count(run):
    results, report = run
    _, rows = markdown_table(report, "Run", "Model", "Defense")
    clean = next(r for r in results.records if r.metric == "clean_accuracy")
    (row,) = rows
    assert row[3] == f"{clean.value:.3f} [{clean.ci_low:.3f}, {clean.ci_high:.3f}]"
    assert "95 % Wilson confidence intervals" in report and "(n = 40)" in report


def headline(name: str, clean: tuple[float, int], robust: tuple[float, int], defense: str = "none") -> Headline:
    """A summary row whose clean and robust accuracies are ``(value, n)`` with Wilson intervals."""
    def ci(value: float, n: int) -> tuple[float, float]:
        return wilson_interval(round(value * n), n)

    return Headline(run=name, model="m", defense=defense, eps=0.1, clean=clean[0], robust=robust[0], attack="PGD",
                    fooled=None, worst_case=True, naive_robust=None, clean_ci=ci(*clean), robust_ci=ci(*robust),
                    n=robust[1])


OVERLAPS = [  # (rows, how many warnings): within a row clean vs robust, across rows robust vs robust
    ([headline("a", (0.95, 500), (0.40, 500))], 0),
    ([headline("a", (0.55, 20), (0.40, 20))], 1),
    ([headline("a", (0.95, 500), (0.40, 500)), headline("b", (0.95, 500), (0.42, 500))], 1),
    ([headline("a", (0.95, 5000), (0.40, 5000)), headline("b", (0.95, 5000), (0.46, 5000))], 0),
    ([headline("a", (0.9, 30), (0.5, 30)), headline("a", (0.9, 30), (0.55, 30), "jpeg:75"),
      headline("b", (0.9, 30), (0.5, 30))], 3),
]


@pytest.mark.parametrize("rows, expected", OVERLAPS, ids=[f"case{i}" for i in range(len(OVERLAPS))])
def test_overlapping_intervals_get_one_warning_line_per_comparison(rows, expected):
    from robustcv.report.significance import overlap_warnings

    lines = overlap_warnings(rows, "accuracy")
    assert len(lines) == len(set(lines)) == expected, lines
    assert all("\n" not in line and "95 % intervals" in line for line in lines)


def test_report_prints_the_warning_under_the_summary(tmp_path):
    from robustcv.report import render_report

    run_dir = make_run(tmp_path / "runs", "few", "m", adversarial=False, failing_check=False)
    results = RunResults.load(run_dir / "results.json")
    attach_intervals(results.records)  # n = 60: none and jpeg:75 cannot be told apart at eps 0.1
    results.save(run_dir / "results.json")
    report = render_report([run_dir], tmp_path / "report", formats=("md",))["md"].read_text("utf-8")
    summary = report.split("## Robust accuracy vs eps")[0]
    warnings = [line for line in summary.splitlines() if line.startswith("Warning: ")]
    assert len(warnings) == 1 and "defense jpeg:75" in warnings[0] and "95 % intervals" in warnings[0], warnings


def test_old_results_json_without_intervals_still_loads(tmp_path):
    run_dir = make_run(tmp_path, "old", "m", adversarial=False, failing_check=False)
    data = json.loads((run_dir / "results.json").read_text("utf-8"))
    for r in data["records"]:  # as written before the interval was recorded
        r.pop("ci_low", None)
        r.pop("ci_high", None)
    results = RunResults.from_dict(data)
    assert all(isinstance(r, Record) and r.interval is None for r in results.records)


# ---------------------------------------------------------------------------------------------
# bootstrap intervals for mIoU and mAP (not proportions of independent samples)


def test_weighted_average_precision_matches_scikit_learn_with_sample_weights():
    from sklearn.metrics import average_precision_score

    from robustcv.metrics.multilabel import weighted_average_precision
    from robustcv.stats import bootstrap_counts

    generator = torch.Generator().manual_seed(3)
    scores = torch.randint(0, 6, (40,), generator=generator).double() / 5  # many ties
    labels = torch.rand(40, generator=generator) < 0.4
    counts = bootstrap_counts(40, resamples=25, seed=7)
    ours = weighted_average_precision(scores, labels, counts)
    for b in range(25):
        if (counts[b] * labels).sum() == 0:
            assert torch.isnan(ours[b])
            continue
        expected = average_precision_score(labels.numpy(), scores.numpy(), sample_weight=counts[b].numpy())
        assert float(ours[b]) == pytest.approx(expected, abs=1e-12)


def test_bootstrap_counts_draw_n_with_replacement_reproducibly():
    from robustcv.stats import bootstrap_counts

    counts = bootstrap_counts(30, resamples=200, seed=1)
    assert counts.shape == (200, 30) and bool((counts.sum(1) == 30).all())
    assert torch.equal(counts, bootstrap_counts(30, resamples=200, seed=1))
    assert float(counts.mean()) == pytest.approx(1.0) and 0.8 < float(counts.var()) < 1.2  # binomial(30, 1/30)


def test_miou_interval_equals_a_percentile_bootstrap_by_resampled_indices():
    """Our weighted sums against the textbook loop: resample image indices, sum, mIoU, percentiles."""
    import numpy as np

    from robustcv.metrics.segmentation import miou, miou_interval
    from robustcv.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED

    generator = torch.Generator().manual_seed(0)
    confusions = torch.randint(0, 50, (20, 4, 4), generator=generator)
    drawn = torch.randint(0, 20, (BOOTSTRAP_RESAMPLES, 20), generator=torch.Generator().manual_seed(BOOTSTRAP_SEED))
    values = np.array([float(miou(confusions[idx].sum(0))) for idx in drawn])
    low, high = miou_interval(confusions)
    assert (low, high) == pytest.approx(tuple(np.quantile(values, [0.025, 0.975])), abs=1e-12)
    assert low < float(miou(confusions.sum(0))) < high


def test_more_images_narrow_the_miou_interval():
    from robustcv.metrics.segmentation import miou_interval

    generator = torch.Generator().manual_seed(0)
    confusions = torch.randint(0, 50, (400, 3, 3), generator=generator)
    few, many = miou_interval(confusions[:25]), miou_interval(confusions)
    assert many[1] - many[0] < 0.6 * (few[1] - few[0])


def test_segmentation_and_multilabel_records_carry_bootstrap_intervals():
    from robustcv.evaluation.records import clean_multilabel_records, clean_segmentation_records

    generator = torch.Generator().manual_seed(0)
    confusions = torch.randint(0, 50, (30, 3, 3), generator=generator)
    (miou_record, pixel_record) = clean_segmentation_records(confusions, "m", "none")
    assert miou_record.ci_low < miou_record.value < miou_record.ci_high
    assert pixel_record.interval is None
    labels = (torch.rand(60, 4, generator=generator) < 0.5).float()
    margins = labels * 2 - 1 + torch.randn(60, 4, generator=generator) * 1.5
    by_metric = {r.metric: r for r in clean_multilabel_records(margins, labels, "m", "none")}
    assert by_metric["clean_map"].ci_low < by_metric["clean_map"].value < by_metric["clean_map"].ci_high
