"""``robustcv report``: render the report of one or several run directories."""
from __future__ import annotations

from pathlib import Path

import click

from robustcv.console import stdout
from robustcv.outputs import OutputKind, claim_output


@click.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Default ./reports/<first run>.")
@click.option("--format", "formats", default="html,md", show_default=True, help="html, md or both.")
@click.option("--force", is_flag=True, help="Replace an existing report.")
def report_command(runs: tuple[str, ...], out: str | None, formats: str, force: bool) -> None:
    """Write report.html / report.md (and plots) from RUN directories' results.json."""
    from robustcv.report import render_report
    from robustcv.report.loading import load_runs

    chosen = tuple(f.strip() for f in formats.split(",") if f.strip())
    bad = set(chosen) - {"html", "md"}
    if bad or not chosen:
        raise click.BadParameter(f"unknown format {sorted(bad)}; use html, md or html,md", param_hint="--format")
    for run in runs:
        if not (Path(run) / "results.json").is_file():
            raise click.BadParameter(f"{run} has no results.json (run `robustcv attack` first)", param_hint="RUNS")
    load_runs([Path(r) for r in runs])  # validated before any output is claimed
    out_dir = Path(out) if out else Path("reports") / Path(runs[0]).name
    protect = {"the models folder": Path("models"), **{f"the run {r}": Path(r) for r in runs}}
    with claim_output(out_dir, OutputKind.REPORT, force=force, protect=protect) as output:
        with output.staging() as staging:
            paths = render_report([Path(r) for r in runs], staging, formats=chosen)
    for kind, path in paths.items():
        stdout.print(f"{kind}: {out_dir / path.name}")
