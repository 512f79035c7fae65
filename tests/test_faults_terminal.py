"""Result tables stay readable in a narrow terminal: no line wider than the terminal, no number
folded over two lines, every value shown once under its own column."""
from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from robustcv.console import print_table

EPS = [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3]
COLUMNS = ["attack", "mode"] + [f"{e:.4g}" for e in EPS]
ROWS = [["pgd", "naive", 0.99, 0.9, 0.8, 0.248, 0.1, 0.05, 0.0],
        ["apgd(loss=mce,steps=100)", "all", 0.991, 0.901, 0.801, 0.198, 0.101, 0.051, 0.001]]


def render(width: int) -> str:
    out = Console(file=io.StringIO(), width=width, color_system=None)
    print_table(out, "defense: none", COLUMNS, ROWS, digits=3, keys=2)
    return out.file.getvalue()


@pytest.mark.parametrize("width", [32, 40, 60, 80, 200])
def test_narrow_terminals_split_columns_instead_of_folding_numbers(width):
    text = render(width)
    assert max(len(line) for line in text.splitlines()) <= width
    assert "…" not in text  # nothing cut short
    values = re.findall(r"(?<![\d.])\d\.\d{3}(?![\d.])", text)  # the 3-decimal cells, never a header
    assert sorted(values) == sorted(f"{v:.3f}" for row in ROWS for v in row[2:])
    assert text.count("naive") == text.count("defense: none")  # the key columns repeat in every part


def test_a_wide_terminal_prints_one_table():
    assert render(200).count("defense: none") == 1 and "columns" not in render(200)
    assert render(40).count("defense: none") > 1
