"""The robustness report: reads run directories (results.json, model.json, gallery PNGs) and writes
a self-contained ``report.html`` and a ``report.md`` with PNG figures beside it."""
from __future__ import annotations

from robustcv.report.render import render_report, write_report

__all__ = ["render_report", "write_report"]
