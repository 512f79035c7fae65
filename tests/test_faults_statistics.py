"""Statistical faults: accuracies without a sample count or an interval, and differences smaller
than the noise presented as findings. The Wilson interval is checked against statsmodels (when
installed) or scipy; results.json and the report carry it; overlapping figures get a warning."""
from __future__ import annotations

import json

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
