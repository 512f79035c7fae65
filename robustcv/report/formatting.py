"""How values are written in the report: the same text in the HTML tables, the Markdown tables and
the figures' tick labels, so a number can be compared across all three."""
from __future__ import annotations

import json
from typing import Any


def fmt_value(value: float | None, digits: int = 4) -> str:
    """Fixed precision everywhere, so tables can be compared with results.json at that precision."""
    return "—" if value is None else f"{value:.{digits}f}"


def fmt_eps(eps: float | None) -> str:
    """``0.1`` stays ``0.1``; ``8/255`` is shown as such; anything else with 4 significant digits."""
    if eps is None:
        return "—"
    if abs(eps - round(eps, 3)) < 1e-12:
        return f"{round(eps, 3):g}"
    k = eps * 255
    if abs(k - round(k)) < 1e-6:
        return f"{round(k)}/255"
    return f"{eps:.4g}"


NORM_LABELS = {"linf": "L∞", "l2": "L2", "l1": "L1"}


def fmt_norm(norm: Any) -> str:
    """A threat model as readers write it: ``L∞``, ``L2``, ``L1`` (anything else as recorded)."""
    return NORM_LABELS.get(str(norm), fmt_text(norm))


def fmt_norm_eps(norm: Any, eps: float | None) -> str:
    """``eps 0.1`` under L∞ (the default threat model), ``L2 eps 1`` / ``L1 eps 12`` otherwise."""
    return f"eps {fmt_eps(eps)}" if str(norm) == "linf" else f"{fmt_norm(norm)} eps {fmt_eps(eps)}"


def fmt_text(value: Any) -> str:
    """Any recorded setting as table text: floats with ``%g``, lists and dicts as JSON, None as a dash."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=False, ensure_ascii=False)
    return "—" if value is None else str(value)
