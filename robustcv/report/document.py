"""A tiny document model both writers render: the report's content is built once, as blocks.

All text in blocks is plain (unescaped) text; each writer escapes it for its own format, so no
name from the data can ever become markup.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Union


@dataclass
class Heading:
    text: str
    level: int = 2
    anchor: str = ""


@dataclass
class Text:
    """A paragraph; ``kind`` is ``p``, ``note`` (greyed, e.g. "not measured") or ``code``."""

    text: str
    kind: str = "p"


@dataclass
class Alert:
    """A loud box: failed sanity checks (``ok=False``) or all passed (``ok=True``)."""

    title: str
    lines: list[str] = field(default_factory=list)
    ok: bool = False


@dataclass
class Image:
    """A PNG inside the output folder (``path``) or bytes to embed that are also written there."""

    path: Path
    alt: str
    width: int | None = None  # CSS pixels; None = natural width capped by the page
    pixelated: bool = False   # tiny images (8x8 digits) are scaled without blurring


@dataclass
class Badge:
    """PASS / FAIL in a table cell."""

    text: str
    ok: bool


Cell = Union[str, Image, Badge]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Cell]]
    caption: str = ""
    numeric: set[int] = field(default_factory=set)  # right-aligned columns
    css: str = ""                                   # extra class (e.g. "gallery", "kv")


@dataclass
class Figure:
    image: Image
    caption: str = ""


Block = Union[Heading, Text, Alert, Table, Figure]
