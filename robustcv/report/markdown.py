"""Render report blocks to GitHub Markdown; images are PNG files beside the report (relative links).

Text from the data is escaped for Markdown (``|`` in table cells, emphasis and link characters)
and for the HTML that Markdown viewers pass through (``<``, ``>``, ``&``).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

from robustcv.report.document import Alert, Badge, Block, Cell, Figure, Heading, Image, Table, Text

_SPECIAL = re.compile(r"([\\`*_\[\]|#])")


def md_escape(text: object) -> str:
    """Plain text, safe inside a paragraph or a table cell."""
    text = " ".join(str(text).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _SPECIAL.sub(r"\\\1", text)


def md_unescape(text: str) -> str:
    """Inverse of ``md_escape`` (for tests and tools that read the tables back)."""
    text = re.sub(r"\\(.)", r"\1", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def render_markdown(title: str, blocks: Sequence[Block], out_dir: Path) -> str:
    """The whole report as Markdown; image links are relative to ``out_dir``."""
    parts = [f"# {md_escape(title)}"]
    parts += [_block(b, out_dir) for b in blocks]
    return "\n\n".join(parts) + "\n"


def _block(block: Block, out_dir: Path) -> str:
    if isinstance(block, Heading):
        return f"{'#' * block.level} {md_escape(block.text)}"
    if isinstance(block, Text):
        if block.kind == "code":
            fence = "```"
            while fence in block.text:
                fence += "`"
            return f"{fence}\n{block.text}\n{fence}"
        return f"*{md_escape(block.text)}*" if block.kind == "note" else md_escape(block.text)
    if isinstance(block, Alert):
        marker = "[!TIP]" if block.ok else "[!CAUTION]"
        lines = [f"> {marker}", f"> **{md_escape(block.title)}**"]
        lines += [">"] * bool(block.lines) + [f"> - {md_escape(line)}" for line in block.lines]
        return "\n".join(lines)
    if isinstance(block, Figure):
        image = _image(block.image, out_dir)
        return image + (f"\n\n*{md_escape(block.caption)}*" if block.caption else "")
    if isinstance(block, Table):
        return _table(block, out_dir)
    raise TypeError(f"unknown block {type(block).__name__}")


def _image(image: Image, out_dir: Path) -> str:
    link = Path(os.path.relpath(image.path, out_dir)).as_posix()
    return f"![{md_escape(image.alt)}]({link.replace(' ', '%20').replace(')', '%29')})"


def _table(table: Table, out_dir: Path) -> str:
    def align(i: int) -> str:
        return "---:" if i in table.numeric else "---"

    lines = [f"**{md_escape(table.caption)}**", ""] if table.caption else []
    lines.append("| " + " | ".join(md_escape(h) for h in table.headers) + " |")
    lines.append("| " + " | ".join(align(i) for i in range(len(table.headers))) + " |")
    lines += ["| " + " | ".join(_cell(c, out_dir) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def _cell(cell: Cell, out_dir: Path) -> str:
    if isinstance(cell, Image):
        return _image(cell, out_dir)
    if isinstance(cell, Badge):
        return f"**{md_escape(cell.text)}**"
    return md_escape(cell)
