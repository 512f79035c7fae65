"""``render_report``: run directories in, ``report.html`` / ``report.md`` and PNG figures out."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from robustcv.errors import UserError
from robustcv.report.binary import auroc_vs_eps
from robustcv.report.breakdown import min_eps, per_class
from robustcv.report.checks import sanity
from robustcv.report.context import Context
from robustcv.report.document import Block
from robustcv.report.gallery import gallery
from robustcv.report.html import render_html
from robustcv.report.loading import RunData, load_runs
from robustcv.report.markdown import render_markdown
from robustcv.report.multilabel import map_vs_eps
from robustcv.report.natural import natural
from robustcv.report.reproducibility import reproducibility
from robustcv.report.study import run_groups
from robustcv.report.summary import robust_vs_eps, summary, tradeoff
from robustcv.report.training import training
from robustcv.results import write_bytes_atomic

FORMATS = {"html": "report.html", "md": "report.md"}

# The order: verdict first, then the evidence, then how it was made.
SECTIONS: tuple[Callable[[Context], list[Block]], ...] = (
    summary, run_groups, robust_vs_eps, map_vs_eps, auroc_vs_eps, tradeoff, per_class, min_eps, gallery, natural, training, sanity,
    reproducibility,
)


def render_report(run_dirs: Sequence[str | Path], out_dir: str | Path, formats: Sequence[str] = ("html", "md"),
                  force: bool = False) -> dict[str, Path]:
    """Write the robustness report of one or several runs (compared on shared axes).

    Args:
        run_dirs: run directories, each holding the ``results.json`` written by ``robustcv attack``
            (a path to the ``results.json`` itself is accepted too).
        out_dir: folder for the report files and the PNG figures (created if needed).
        formats: any of ``html`` (self-contained, images embedded) and ``md`` (images beside it).
        force: replace an existing report; without it an existing report is a ``UserError``.

    Returns:
        The written files by format, e.g. ``{"html": out/report.html, "md": out/report.md}``.

    Raises:
        UserError: unknown format, missing or corrupt results.json, or a report already there.

    Example:
        >>> render_report([Path("runs/digits")], Path("reports/digits"))  # doctest: +SKIP
    """
    formats = tuple(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UserError(f"unknown report format {', '.join(unknown) or '(none)'}; choose from {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    targets = {f: out_dir / FORMATS[f] for f in formats}
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing and not force:
        raise UserError(f"{existing[0]} already exists (use --force to replace it)")
    runs = load_runs([Path(d) for d in run_dirs])
    norms = {str(run.results.run.get("norm")) for run in runs}
    if len(norms) > 1:  # one eps axis cannot hold L-inf and L2 budgets
        raise UserError(f"these runs use different norms ({', '.join(sorted(norms))}); report them separately")
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks = build_blocks(runs, out_dir)
    title = report_title(runs)
    for fmt, path in targets.items():
        text = render_html(title, blocks) if fmt == "html" else render_markdown(title, blocks, out_dir)
        write_bytes_atomic(path, text.encode("utf-8"))
    return targets


def build_blocks(runs: list[RunData], out_dir: Path) -> list[Block]:
    """Every section in order; the PNG figures are written into ``out_dir`` on the way."""
    ctx = Context(runs=runs, out_dir=out_dir)
    return [block for section in SECTIONS for block in section(ctx)]


def report_title(runs: list[RunData]) -> str:
    names = ", ".join(run.name for run in runs)
    return f"Robustness report: {names}" if len(runs) < 4 else f"Robustness report: {len(runs)} runs compared"
