"""Rich console helpers: one stderr console, progress bars and result tables."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

from rich import box
from rich.console import Console
from rich.measure import Measurement
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
    """A compact rich table; floats are shown with ``digits`` decimals. Numbers never wrap (a
    folded number misreads); text columns fold."""
    out = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    numeric = [bool(rows) and all(isinstance(row[i], (int, float)) for row in rows) for i in range(len(columns))]
    for index, column in enumerate(columns):
        out.add_column(column, overflow="ellipsis" if numeric[index] else "fold", no_wrap=numeric[index],
                       justify="right" if numeric[index] else "left", min_width=len(column) if numeric[index] else None)
    for row in rows:
        out.add_row(*[f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in row])
    return out


def print_table(out: Console, title: str, columns: Sequence[str], rows: Sequence[Sequence[object]],
                digits: int = 4, *, keys: int = 1) -> None:
    """Print a table whose value columns are split over several tables (each repeating the first
    ``keys`` columns) when it is wider than the terminal, so no number is folded in a narrow one."""
    values = len(columns) - keys
    for size in range(values, 0, -1):
        parts = [range(start, min(start + size, values)) for start in range(0, values, size)]
        tables = [_part(title, columns, rows, digits, keys, part, len(parts)) for part in parts]
        if size == 1 or all(_natural_width(out, t) <= out.width for t in tables):
            for part_table in tables:
                out.print(part_table)
            return


def _natural_width(out: Console, renderable: Table) -> int:
    return Measurement.get(out, out.options.update_width(10_000), renderable).maximum


def _part(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]], digits: int, keys: int,
          part: range, count: int) -> Table:
    picked = list(range(keys)) + [keys + i for i in part]
    shown = title if count == 1 else f"{title} (columns {part.start + 1}-{part.stop} of {len(columns) - keys})"
    return table(shown, [columns[i] for i in picked], [[row[i] for i in picked] for row in rows], digits)
