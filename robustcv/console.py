"""Rich console helpers: one stderr console, progress bars and result tables."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(stderr=True)
stdout = Console()


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Progress]:
    """A rich progress bar with a free-text status field; disabled bars draw nothing."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )
    with progress:
        yield progress


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]], digits: int = 4) -> Table:
    """A compact rich table (fits 80 columns where it can); floats are shown with ``digits`` decimals."""
    out = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*[f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in row])
    return out
