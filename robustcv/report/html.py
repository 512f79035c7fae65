"""Render report blocks to one self-contained HTML file.

Inline CSS, every image embedded as a base64 ``data:`` URI, no scripts and no external resources,
so the file reads offline, prints, and can be mailed. Every piece of text goes through ``esc``.
"""
from __future__ import annotations

import base64
import html
from typing import Sequence

from robustcv.report.document import Alert, Badge, Block, Cell, Figure, Heading, Image, Table, Text

CSS = """
:root { --fg: #1b1f24; --muted: #5b636e; --line: #d6dbe1; --bad: #b42318; --bad-bg: #fef3f2;
        --good: #067647; --good-bg: #ecfdf3; --head: #f3f5f8; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--fg); margin: 0 auto; padding: 24px 32px 48px; max-width: 1180px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 8px; word-break: break-all; }
p.note { color: var(--muted); font-style: italic; }
pre { background: var(--head); border: 1px solid var(--line); border-radius: 4px; padding: 8px 10px;
      white-space: pre-wrap; word-break: break-all; font-size: 12.5px; }
nav { color: var(--muted); margin-bottom: 8px; }
nav a { color: #175cd3; text-decoration: none; margin-right: 14px; white-space: nowrap; }
.alert { border: 2px solid var(--bad); background: var(--bad-bg); color: var(--bad); border-radius: 6px;
         padding: 10px 14px; margin: 10px 0 14px; }
.alert.ok { border-color: var(--good); background: var(--good-bg); color: var(--good); }
.alert strong { display: block; font-size: 15px; }
.alert ul { margin: 6px 0 0; padding-left: 20px; color: var(--fg); }
.scroll { overflow-x: auto; margin: 8px 0 14px; }
table { border-collapse: collapse; font-size: 12.5px; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border: 1px solid var(--line); padding: 4px 8px; vertical-align: middle; text-align: left; }
th { background: var(--head); font-weight: 600; }
tbody tr:nth-child(even) td { background: #fafbfc; }
th { max-width: 16em; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
table.kv td:first-child { font-family: ui-monospace, "DejaVu Sans Mono", monospace; white-space: nowrap; }
table.kv td { word-break: break-all; }
table.gallery td { text-align: center; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 700; font-size: 11.5px;
         color: #fff; background: var(--good); }
.badge.fail { background: var(--bad); }
figure { margin: 10px 0 16px; }
figure img { max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 12.5px; margin-top: 4px; }
img.px { image-rendering: pixelated; image-rendering: crisp-edges; border: 1px solid var(--line); }
@media print {
  body { max-width: none; padding: 0; font-size: 10.5pt; }
  nav { display: none; }
  h2 { break-after: avoid; page-break-after: avoid; }
  figure, tr, .alert, pre { break-inside: avoid; page-break-inside: avoid; }
  thead { display: table-header-group; }
  .scroll { overflow: visible; }
  .alert, .badge, th { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def esc(text: object) -> str:
    """Every string from the data goes through here before it touches markup."""
    return html.escape(str(text), quote=True)


def render_html(title: str, blocks: Sequence[Block]) -> str:
    """The whole page as a string."""
    nav = " ".join(f'<a href="#{esc(b.anchor)}">{esc(b.text)}</a>'
                   for b in blocks if isinstance(b, Heading) and b.anchor)
    body = "\n".join(_block(b) for b in blocks)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            f"<h1>{esc(title)}</h1>\n<nav>{nav}</nav>\n{body}\n</body>\n</html>\n")


def _block(block: Block) -> str:
    if isinstance(block, Heading):
        anchor = f' id="{esc(block.anchor)}"' if block.anchor else ""
        return f"<h{block.level}{anchor}>{esc(block.text)}</h{block.level}>"
    if isinstance(block, Text):
        if block.kind == "code":
            return f"<pre><code>{esc(block.text)}</code></pre>"
        css = ' class="note"' if block.kind == "note" else ""
        return f"<p{css}>{esc(block.text)}</p>"
    if isinstance(block, Alert):
        items = "".join(f"<li>{esc(line)}</li>" for line in block.lines)
        return (f'<div class="alert{" ok" if block.ok else ""}" role="alert"><strong>{esc(block.title)}</strong>'
                + (f"<ul>{items}</ul>" if items else "") + "</div>")
    if isinstance(block, Figure):
        caption = f"<figcaption>{esc(block.caption)}</figcaption>" if block.caption else ""
        return f"<figure>{_img(block.image)}{caption}</figure>"
    if isinstance(block, Table):
        return _table(block)
    raise TypeError(f"unknown block {type(block).__name__}")


def _img(image: Image) -> str:
    data = base64.b64encode(image.path.read_bytes()).decode("ascii")
    width = f' width="{int(image.width)}"' if image.width else ""
    css = ' class="px"' if image.pixelated else ""
    return f'<img src="data:image/png;base64,{data}" alt="{esc(image.alt)}"{width}{css}>'


def _table(table: Table) -> str:
    def cls(i: int) -> str:
        return ' class="num"' if i in table.numeric else ""

    head = "".join(f"<th{cls(i)}>{esc(h)}</th>" for i, h in enumerate(table.headers))
    rows = "".join("<tr>" + "".join(f"<td{cls(i)}>{_cell(c)}</td>" for i, c in enumerate(row)) + "</tr>\n"
                   for row in table.rows)
    caption = f"<caption>{esc(table.caption)}</caption>" if table.caption else ""
    css = f' class="{esc(table.css)}"' if table.css else ""
    return (f'<div class="scroll"><table{css}>{caption}<thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n{rows}</tbody></table></div>")


def _cell(cell: Cell) -> str:
    if isinstance(cell, Image):
        return _img(cell)
    if isinstance(cell, Badge):
        return f'<span class="badge{"" if cell.ok else " fail"}">{esc(cell.text)}</span>'
    return esc(cell)
