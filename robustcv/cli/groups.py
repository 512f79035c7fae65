"""Console tables of several runs: an ensemble beside its members, a seed study's runs and spread."""
from __future__ import annotations

from typing import Sequence

from robustcv.console import print_table, stdout
from robustcv.results import RunResults
from robustcv.studies import Curve, Spread, run_curve


def curve_columns(curves: Sequence[Curve]) -> list[str]:
    """``clean`` then one column per eps (the first curve's grid)."""
    return ["clean"] + [f"eps {e:.4g}" for e in curves[0].robust]


def curve_row(curve: Curve) -> list[object]:
    return [curve.clean if curve.clean is not None else "—"] + list(curve.robust.values())


def print_members(results: RunResults, members: Sequence[RunResults | None]) -> None:
    """Clean and worst-case robust accuracy per eps of the ensemble and each member alone."""
    if not members or any(m is None for m in members):
        return
    curves = [run_curve(results)] + [run_curve(m) for m in members]
    rows = [[label] + curve_row(c) for label, c in zip(["ensemble"] + [c.model for c in curves[1:]], curves)]
    stdout.print(f"the ensemble (white-box through all members) and each member alone: {curves[0].model}")
    print_table(stdout, "clean and worst-case robust accuracy", ["model"] + curve_columns(curves), rows, digits=3)


def print_study(seeds: Sequence[int], curves: Sequence[Curve], clean: Spread | None,
                robust: dict[float, Spread]) -> None:
    """Every seed's clean and worst-case robust accuracy per eps, then mean ± std (ddof=1)."""
    rows = [[f"seed {s}"] + curve_row(c) for s, c in zip(seeds, curves)]
    rows.append(["mean ± std"] + [clean.text() if clean else "—"] + [robust[e].text() for e in robust])
    title = f"seed study ({len(seeds)} seeds): clean and worst-case robust per eps; sample std (ddof=1)"
    print_table(stdout, title, ["run", "clean"] + [f"{e:.4g}" for e in robust], rows, digits=3)
