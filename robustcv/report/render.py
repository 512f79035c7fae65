"""``render_report``: run directories in, ``report.html`` / ``report.md`` and PNG figures out."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

from robustcv.errors import UserError
from robustcv.outputs import OutputKind, claim_output
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
                  force: bool = False, *, option: str = "out_dir",
                  protect: Mapping[str, Path] | None = None) -> dict[str, Path]:
    """Write the robustness report of one or several runs (compared on shared axes).

    The report folder is claimed like every robustcv output (:func:`robustcv.outputs.claim_output`):
    locked, built in a hidden staging folder and swapped in whole. The working directory, its
    parents, the home folder and the runs themselves are refused, and so is a folder holding
    files robustcv did not write, even with ``force``.

    Args:
        run_dirs: run directories, each holding the ``results.json`` written by ``robustcv attack``
            (a path to the ``results.json`` itself is accepted too).
        out_dir: folder for the report files and the PNG figures (created if needed).
        formats: any of ``html`` (self-contained, images embedded) and ``md`` (images beside it).
        force: replace an existing robustcv report (all of it); without it an existing one is refused.
        option: the name of ``out_dir`` quoted in refusals (the CLI passes ``--out``).
        protect: more folders never to write into, by description.

    Returns:
        The written files by format, e.g. ``{"html": out/report.html, "md": out/report.md}``.

    Raises:
        UserError: unknown format, missing or corrupt results.json, an output folder refused, or
            a write fault (full disk, read-only folder).

    Example:
        >>> render_report([Path("runs/digits")], Path("reports/digits"))  # doctest: +SKIP
    """
    formats = check_formats(formats)
    runs = load_runs([Path(d) for d in run_dirs])
    runs_protected = {f"the run {run.directory}": run.directory for run in runs}
    out_dir = Path(out_dir)
    with claim_output(out_dir, OutputKind.REPORT, force=force, option=option,
                      protect={**runs_protected, **(protect or {})}) as output:
        with output.staging() as staging:
            written = write_report(runs, staging, formats)
    return {fmt: out_dir / path.name for fmt, path in written.items()}


def check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    """The formats without repeats; ``UserError`` for an unknown one or none."""
    formats = tuple(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UserError(f"unknown report format {', '.join(unknown) or '(none)'}; choose from {', '.join(FORMATS)}")
    return formats


def write_report(runs: Sequence[RunData] | Sequence[str | Path], folder: Path,
                 formats: Sequence[str] = ("html", "md")) -> dict[str, Path]:
    """Write the report files and figures into ``folder``, a claimed output's staging folder
    (see :meth:`robustcv.outputs.Output.staging`); returns the files by format.

    Args:
        runs: the loaded runs, or their directories.
        folder: where the files go (made if missing); nothing here checks or claims it.
        formats: as :func:`render_report`'s.
    """
    formats = check_formats(formats)
    loaded = list(runs) if all(isinstance(r, RunData) for r in runs) else load_runs([Path(r) for r in runs])
    norms = {str(run.results.run.get("norm")) for run in loaded}
    if len(norms) > 1:  # one eps axis cannot hold L-inf and L2 budgets
        raise UserError(f"these runs use different norms ({', '.join(sorted(norms))}); report them separately")
    folder.mkdir(parents=True, exist_ok=True)
    blocks = build_blocks(loaded, folder)
    title = report_title(loaded)
    targets = {f: folder / FORMATS[f] for f in formats}
    for fmt, path in targets.items():
        text = render_html(title, blocks) if fmt == "html" else render_markdown(title, blocks, folder)
        write_bytes_atomic(path, text.encode("utf-8"))
    return targets


def build_blocks(runs: list[RunData], out_dir: Path) -> list[Block]:
    """Every section in order; the PNG figures are written into ``out_dir`` on the way."""
    ctx = Context(runs=runs, out_dir=out_dir)
    return [block for section in SECTIONS for block in section(ctx)]


def report_title(runs: list[RunData]) -> str:
    names = ", ".join(run.name for run in runs)
    return f"Robustness report: {names}" if len(runs) < 4 else f"Robustness report: {len(runs)} runs compared"
