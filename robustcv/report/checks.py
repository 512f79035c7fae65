"""The sanity checks the evaluation ran (in AutoAttack's spirit: warn when a robust number may be
an artefact of gradient masking or a weak attack), each with its verdict and its numbers."""
from __future__ import annotations

from typing import Any

from robustcv.attack_failures import INDICATORS
from robustcv.report.context import NOT_MEASURED, Context
from robustcv.report.document import Badge, Block, Cell, Heading, Table, Text
from robustcv.report.formatting import fmt_text


def sanity(ctx: Context) -> list[Block]:
    """Every recorded check of every run, passed or failed."""
    blocks: list[Block] = [Heading("Sanity checks", anchor="sanity")]
    rows: list[list[Cell]] = []
    for run in ctx.runs:
        for c in run.results.sanity_checks:
            values = "; ".join(f"{k} = {fmt_text(_rounded(v))}" for k, v in (c.values or {}).items())
            rows.append([run.name, c.model or "all", c.defense or "all", c.name,
                         Badge("PASS" if c.passed else "FAIL", c.passed), c.detail, values])
    if not rows:
        return blocks + [Text("Sanity checks: " + NOT_MEASURED + ".", "note")]
    blocks.append(Table(["Run", "Model", "Defense", "Check", "Result", "Detail", "Numbers"], rows))
    return blocks + indicators(ctx)


def indicators(ctx: Context) -> list[Block]:
    """The six indicators of attack failure (Pintor et al. 2022): each one's state per run, model
    and defense, what it means, and the samples that triggered it."""
    rows: list[list[Cell]] = []
    for run in ctx.runs:
        found: dict[tuple[str, str, str], list] = {}
        for c in run.results.sanity_checks:
            if c.indicator:
                found.setdefault((c.model or "all", c.defense or "all", c.indicator), []).append(c)
        for (model, defense, name), checks in found.items():
            fired = [c for c in checks if not c.passed]
            samples = sorted({s for c in fired for s in (c.values or {}).get("samples", [])})
            rows.append([run.name, model, defense, name, Badge("TRIGGERED" if fired else "clear", not fired),
                         INDICATORS[name].meaning if name in INDICATORS else "",
                         ", ".join(map(str, samples[:20])) or "—"])
    if not rows:
        return []
    return [Heading("Indicators of attack failure", anchor="indicators"),
            Text("Pintor et al. (NeurIPS 2022): each indicator names a way gradient attacks fail silently and leave "
                 "the robust figure too high. A triggered indicator makes the verdict inconclusive. Samples are "
                 "indices into the evaluated set.", "note"),
            Table(["Run", "Model", "Defense", "Indicator", "State", "What it would mean, when triggered", "Samples that triggered it"],
                  rows)]


def _rounded(value: Any) -> Any:
    """Floats to 4 significant digits, inside lists and dicts too (check values can be long)."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value
