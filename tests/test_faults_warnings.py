"""Warnings print as one clean line each: ``Warning: <message>``, no file and line from Python's
warnings machinery, no source line, no repeats."""
from __future__ import annotations

import warnings
from typing import Callable, NamedTuple

import pytest

from fault_helpers import image_folder, run_cli
from robustcv.cli import one_line_warnings


def _twice_from_two_places() -> None:
    warnings.warn("same text")
    warnings.warn("same text", RuntimeWarning)


class Emitted(NamedTuple):
    name: str
    emit: Callable[[], None]
    lines: list[str]


EMITTED = [
    Emitted("a user warning", lambda: warnings.warn("look here"), ["Warning: look here"]),
    Emitted("the same text twice", _twice_from_two_places, ["Warning: same text"]),
    Emitted("a message over several lines", lambda: warnings.warn("first\n  second"), ["Warning: first second"]),
    Emitted("two different warnings", lambda: (warnings.warn("one"), warnings.warn("two")),
            ["Warning: one", "Warning: two"]),
]


@pytest.mark.parametrize("case", EMITTED, ids=[c.name for c in EMITTED])
def test_each_distinct_warning_is_one_clean_line(case, capsys):
    with one_line_warnings():
        case.emit()
    assert capsys.readouterr().err.splitlines() == case.lines


def test_a_skipped_file_in_an_image_folder_warns_in_one_line(tmp_path, capsys):
    folder = image_folder(tmp_path / "imgs", per_class=6, classes={"a": (200, 0, 0), "b": (0, 0, 200)})
    (folder / "a" / "notes.txt").write_text("not an image")
    code, _, err = run_cli(capsys, "train", "--dataset", f"imagefolder:{folder}", "--image-size", "16",
                           "--epochs", "1", "--models-dir", tmp_path / "models", "-q")
    assert code == 0, err
    assert err.splitlines() == [f"Warning: image folder '{folder}': skipped 1 file(s) that are not readable "
                                "images: a/notes.txt"]


def test_warning_filters_are_restored_after_the_command(capsys):
    before = warnings.showwarning
    with one_line_warnings():
        pass
    assert warnings.showwarning is before
