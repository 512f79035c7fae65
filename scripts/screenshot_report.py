#!/usr/bin/env python3
"""Screenshot a report with headless Chromium: ``screenshot_report.py REPORT.html OUT.png``.

Chromium runs with networking features off and a throw-away profile, so the screenshot shows
exactly what an offline reader sees. Console errors (a script error, a refused resource) are
printed and make the exit status 1.

Options: ``--width`` (1280) and ``--height`` (4000) of the window, ``--chromium`` binary.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
# Lines Chromium writes to stderr when the page logs to the console (a report has no script, so
# any console line is a problem) or fails to load something.
CONSOLE_ERROR = re.compile(r"Uncaught|:CONSOLE[:(]|console\.error|ERR_[A-Z_]+|Failed to load", re.I)


def find_chromium() -> str | None:
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def chromium_args(binary: str, profile: Path) -> list[str]:
    return [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}",
            "--enable-logging=stderr", "--v=0"]


def screenshot(report: Path, out: Path, width: int = 1280, height: int = 4000, binary: str | None = None,
               timeout: float = 120.0) -> list[str]:
    """Write ``out`` (PNG) and return the console-error lines Chromium reported (empty: clean)."""
    binary = binary or find_chromium()
    if binary is None:
        raise FileNotFoundError("chromium not found (Debian: apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="robustcv-chromium-") as profile:
        args = chromium_args(binary, Path(profile)) + [f"--screenshot={out.resolve()}",
                                                      f"--window-size={width},{height}",
                                                      report.resolve().as_uri()]
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    errors = [line for line in done.stderr.splitlines() if CONSOLE_ERROR.search(line)]
    if done.returncode != 0 or not out.is_file():
        errors.append(f"chromium exited with status {done.returncode}: {done.stderr.strip()[-500:]}")
    return errors


def dump_dom(report: Path, binary: str | None = None, timeout: float = 120.0) -> str:
    """The DOM Chromium built from the report (proves it parsed the file as HTML)."""
    binary = binary or find_chromium()
    if binary is None:
        raise FileNotFoundError("chromium not found (Debian: apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="robustcv-chromium-") as profile:
        args = chromium_args(binary, Path(profile)) + ["--dump-dom", report.resolve().as_uri()]
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    return done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--chromium", default=None)
    args = parser.parse_args(argv)
    if not args.report.is_file():
        print(f"error: {args.report} does not exist", file=sys.stderr)
        return 2
    errors = screenshot(args.report, args.out, args.width, args.height, args.chromium)
    for line in errors:
        print(line, file=sys.stderr)
    print(f"wrote {args.out}" if args.out.is_file() else "no screenshot written")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
