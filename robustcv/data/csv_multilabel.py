"""``csv:PATH``: a multi-label dataset listed in a CSV file with a header row.

The first column is an image path (relative to the CSV's folder unless absolute). Then either

* one more column holding each image's label list, names separated by spaces, ``;`` or ``|``
  (empty: no label)::

      image,labels
      photos/1.jpg,cat dog

  The classes are the names seen, sorted, unless a ``classes.txt`` (one name per line) lies beside
  the CSV: then it fixes their order and a name it does not hold is an error; or
* one 0/1 column per class, the header naming the classes::

      image,cat,dog,person
      photos/1.jpg,1,1,0

A malformed row (wrong column count, no path, a value other than 0/1, an unknown class) is one
``UserError`` naming the file and line. Images are resized to ``spec.image_size`` (default 64).
There is no official test split: train/val/test come from ``spec.test_fraction`` and
``spec.val_fraction``, seeded and stratified by label set.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

import torch

from robustcv.data.base import DataSpec, Splits
from robustcv.data.multilabel_files import DEFAULT_SIZE, label_strata, multilabel_splits, read_images
from robustcv.data.registry import register_dataset
from robustcv.data.splitting import train_val_test_indices
from robustcv.errors import UserError

Row = tuple[int, list[str]]  # (line number, cells)
_SEPARATORS = re.compile(r"[\s;|]+")


def read_rows(path: Path) -> tuple[list[str], list[Row]]:
    """The header and the non-blank data rows (with their line numbers) of a CSV file."""
    if not path.is_file():
        raise UserError(f"csv file '{path}' does not exist")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            lines = [(reader.line_num, row) for row in reader]
    except (UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"cannot read csv file '{path}': {err}") from None
    lines = [(n, [cell.strip() for cell in row]) for n, row in lines if any(cell.strip() for cell in row)]
    if not lines:
        raise UserError(f"csv file '{path}' is empty; expected a header such as image,labels")
    (_, header), rows = lines[0], lines[1:]
    if len(header) < 2:
        raise UserError(f"csv file '{path}' needs an image column and labels: a label-list column or one 0/1 "
                        f"column per class (header: {','.join(header)})")
    if not rows:
        raise UserError(f"csv file '{path}' lists no images")
    return header, rows


def _check_width(path: Path, header: list[str], line: int, cells: list[str]) -> None:
    if len(cells) != len(header):
        raise UserError(f"{path} line {line}: expected {len(header)} columns ({','.join(header)}), got {len(cells)}")
    if not cells[0]:
        raise UserError(f"{path} line {line}: the image path is empty")


def list_classes(path: Path, rows: list[Row]) -> tuple[str, ...]:
    """The label-list form's classes: ``classes.txt`` beside the CSV, else every name seen, sorted."""
    listed = path.parent / "classes.txt"
    if listed.is_file():
        names = tuple(line.strip() for line in listed.read_text(encoding="utf-8").splitlines() if line.strip())
    else:
        names = tuple(sorted({name for _, cells in rows for name in _SEPARATORS.split(cells[1]) if name}))
    if len(names) < 2:
        raise UserError(f"csv file '{path}' names {len(names)} class(es); a multi-label classifier needs at least two")
    return names


def list_labels(path: Path, rows: list[Row], classes: tuple[str, ...]) -> torch.Tensor:
    """``[N, K]`` 0/1 labels from the label-list column; an unknown name is an error naming its line."""
    labels = torch.zeros(len(rows), len(classes), dtype=torch.long)
    for i, (line, cells) in enumerate(rows):
        for name in filter(None, _SEPARATORS.split(cells[1])):
            if name not in classes:
                raise UserError(f"{path} line {line}: unknown class '{name}' (classes: {', '.join(classes)})")
            labels[i, classes.index(name)] = 1
    return labels


def column_labels(path: Path, header: list[str], rows: list[Row]) -> torch.Tensor:
    """``[N, K]`` 0/1 labels from one column per class; a value other than 0 or 1 is an error."""
    labels = torch.zeros(len(rows), len(header) - 1, dtype=torch.long)
    for i, (line, cells) in enumerate(rows):
        for k, value in enumerate(cells[1:]):
            if value not in ("0", "1"):
                raise UserError(f"{path} line {line}: column '{header[k + 1]}' holds {value!r}; expected 0 or 1")
            labels[i, k] = int(value)
    return labels


def read_csv_labels(path: Path) -> tuple[list[Path], torch.Tensor, tuple[str, ...]]:
    """Image paths, ``[N, K]`` labels and class names of a multi-label CSV (either form)."""
    header, rows = read_rows(path)
    for line, cells in rows:
        _check_width(path, header, line, cells)
    if len(header) == 2:
        classes = list_classes(path, rows)
        labels = list_labels(path, rows, classes)
    else:
        classes = tuple(header[1:])
        if len(set(classes)) != len(classes) or not all(classes):
            raise UserError(f"csv file '{path}': the class columns need distinct, non-empty names "
                            f"({','.join(classes)})")
        labels = column_labels(path, header, rows)
    images = [Path(cells[0]) if Path(cells[0]).is_absolute() else path.parent / cells[0] for _, cells in rows]
    return images, labels, classes


@register_dataset("csv:<path>", tasks=("multilabel",))
def build_csv(spec: DataSpec) -> Splits:
    """Seeded, label-set-stratified train/val/test splits of the CSV named after the colon."""
    path = Path(spec.name.partition(":")[2].strip()).expanduser()
    paths, labels, classes = read_csv_labels(path)
    images = read_images(paths, spec.image_size or DEFAULT_SIZE)
    parts = train_val_test_indices(label_strata(labels), spec)
    return multilabel_splits(spec.name, images, labels, classes, parts)
