"""A real browser opens the report offline: no console errors, a non-blank page, names as text."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test_report_synthetic import EVIL_MODEL, rendered_two_runs

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "screenshot_report.py"
CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="/usr/bin/chromium absent (Debian: apt-get install -y chromium)")


def _script_module():
    spec = importlib.util.spec_from_file_location("screenshot_report", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report_html() -> Path:
    return rendered_two_runs()[1]["html"]


def test_screenshot_has_no_console_errors_and_is_not_blank(report_html, tmp_path):
    shot = tmp_path / "shot.png"
    done = subprocess.run([sys.executable, str(SCRIPT), str(report_html), str(shot), "--height", "2000"],
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (2000, 1280)
    assert pixels.std() > 20  # text, tables and plots, not one flat colour
    assert (pixels < 128).mean() > 0.01


def test_chromium_parses_names_as_text(report_html):
    dom = _script_module().dump_dom(report_html)
    assert "Robustness report" in dom and "<table" in dom
    assert "<script" not in dom.lower()
    assert EVIL_MODEL.replace("<", "&lt;").replace(">", "&gt;") in dom


def test_console_errors_are_detected(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<html><body>x<script>undefinedFunction()</script></body></html>")
    errors = _script_module().screenshot(page, tmp_path / "bad.png", height=200)
    assert any("Uncaught" in line for line in errors)
