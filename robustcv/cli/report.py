"""``robustcv report``: render the report of one or several run directories."""
from __future__ import annotations

from pathlib import Path

import click

from robustcv.console import stdout


@click.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Default ./reports/<first run>.")
@click.option("--format", "formats", default="html,md", show_default=True, help="html, md or both.")
@click.option("--force", is_flag=True, help="Replace an existing report.")
def report_command(runs: tuple[str, ...], out: str | None, formats: str, force: bool) -> None:
    """Write report.html / report.md (and plots) from RUN directories' results.json."""
    from robustcv.report import render_report

    chosen = tuple(f.strip() for f in formats.split(",") if f.strip())
    bad = set(chosen) - {"html", "md"}
    if bad or not chosen:
        raise click.BadParameter(f"unknown format {sorted(bad)}; use html, md or html,md", param_hint="--format")
    for run in runs:
        if not (Path(run) / "results.json").is_file():
            raise click.BadParameter(f"{run} has no results.json (run `robustcv attack` first)", param_hint="RUNS")
    out_dir = Path(out) if out else Path("reports") / Path(runs[0]).name
    # runs validated first, then the folder claimed, staged and swapped in (render_report does both)
    paths = render_report([Path(r) for r in runs], out_dir, formats=chosen, force=force, option="--out",
                          protect={"the models folder": Path("models"), **{f"the run {r}": Path(r) for r in runs}})
    for kind, path in paths.items():
        stdout.print(f"{kind}: {path}")
