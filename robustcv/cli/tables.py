"""Console tables of one run: a training's test metrics, an attack run's robust figure per eps."""
from __future__ import annotations

from robustcv.console import console, print_table, stdout, table
from robustcv.tasks import DEFAULT_TASK, get_task

SUMMARY_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_micro", "f1_weighted",
                   "miou", "pixel_accuracy", "mean_class_accuracy", "map", "exact_match", "hamming_loss")


def print_training_summary(result) -> None:
    """The test-metrics table and the checkpoint path."""
    meta = result.metadata
    metrics = meta.test_metrics
    verb = "trained" if result.trained else "already trained (same spec hash), nothing to do"
    rows = [(key, metrics[key]) for key in SUMMARY_METRICS if isinstance(metrics.get(key), (int, float))]
    if meta.best_epoch is not None:  # an ensemble's members each keep their own best epoch
        rows.append(("best epoch", str(meta.best_epoch)))
    rows.append(("train seconds", float(meta.seconds)))
    stdout.print(table("test metrics", ("metric", "value"), rows))
    stdout.print(f"{verb}: {result.checkpoint}")


def print_results(results) -> None:
    """Robust accuracy per eps: one table per defense, a row per (attack, mode), a column per eps."""
    grid = results.run["eps_grid"]
    task = get_task(results.run.get("task", DEFAULT_TASK))
    metric = task.robust_metric
    by_defense: dict[str, dict[tuple, dict[float, float]]] = {}
    for r in results.records:
        if r.metric == metric and not r.attack.startswith("natural:"):
            rows = by_defense.setdefault(r.defense, {})
            mode = "all" if r.attack == "worst-case" else ("adaptive" if r.adaptive else "naive")
            rows.setdefault((r.attack, mode), {})[r.eps] = r.value
    columns = ["attack", "mode"] + [f"{e:.4g}" for e in grid]
    stdout.print(f"{task.robust_label} ({results.run['norm']}) of {results.run['name']}")
    for defense, rows in by_defense.items():
        body = [list(key) + [values.get(e, float("nan")) for e in grid] for key, values in rows.items()]
        print_table(stdout, f"defense: {defense}", columns, body, digits=3, keys=2)
    protocol = (results.run.get("config") or {}).get("protocol")
    if protocol:
        stdout.print(f"protocol: {protocol} produced these numbers")
    failed = [c for c in results.sanity_checks if not c.passed]
    for check in failed:
        console.print(f"[bold red]SANITY CHECK FAILED[/] {check.defense or 'all'}: {check.name} — {check.detail}")
