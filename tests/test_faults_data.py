"""Data faults: class folders changed after training (data drift), images of any bit depth and mode.

One image-folder model is trained once per module (``--epochs 1``, 16 pixels); each drift case
attacks a copy of its checkpoint pointed at a changed copy of the folder.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pytest
from PIL import Image

from fault_helpers import CHEAP_ATTACK, assert_one_line, image_folder, only_child, run_cli
from robustcv.cli import main
from robustcv.data.drift import class_fingerprint
from robustcv.results import RunResults


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(image folder, checkpoint trained on it through ``robustcv train``)."""
    root = tmp_path_factory.mktemp("drift")
    folder = image_folder(root / "imgs")
    models = root / "models"
    assert main(["train", "--dataset", f"imagefolder:{folder}", "--image-size", "16", "--epochs", "1",
                 "--models-dir", str(models), "-q"]) == 0
    return folder, only_child(models)


def relocated(trained: tuple[Path, Path], where: Path) -> tuple[Path, Path]:
    """A copy of the folder and of the checkpoint, the checkpoint's model.json pointing at the copy."""
    folder, checkpoint = trained
    shutil.copytree(folder, where / "imgs")
    shutil.copytree(checkpoint, where / "ck")
    meta_path = where / "ck" / "model.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["data"]["name"] = f"imagefolder:{where / 'imgs'}"
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    return where / "imgs", where / "ck"


class Drift(NamedTuple):
    name: str
    change: Callable[[Path], object]
    words: tuple[str, ...]


DRIFTS = [
    Drift("renamed", lambda root: (root / "dog").rename(root / "zebra"), ("missing 'dog'", "new 'zebra'")),
    Drift("added", lambda root: shutil.copytree(root / "dog", root / "emu"), ("new 'emu'",)),
    Drift("removed", lambda root: shutil.rmtree(root / "fox"), ("missing 'fox'",)),
]


@pytest.mark.parametrize("case", DRIFTS, ids=[c.name for c in DRIFTS])
def test_changed_classes_are_refused_in_one_line(case, trained, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    folder, checkpoint = relocated(trained, tmp_path)
    case.change(folder)
    code, _, err = run_cli(capsys, "attack", "--checkpoint", checkpoint, "--n", "8", "--no-report", *CHEAP_ATTACK)
    assert_one_line(code, err, "data drift", f"imagefolder:{folder}", *case.words)
    assert not (tmp_path / "runs").exists()


def test_unchanged_classes_attack_and_the_fingerprint_is_recorded(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _, checkpoint = relocated(trained, tmp_path)
    meta = json.loads((checkpoint / "model.json").read_text(encoding="utf-8"))
    assert meta["class_fingerprint"] == class_fingerprint(["cat", "dog", "fox"])
    code, _, err = run_cli(capsys, "attack", "--checkpoint", checkpoint, "--n", "8", "--no-report", "--out", "run",
                           *CHEAP_ATTACK)
    assert code == 0, err
    assert RunResults.load(tmp_path / "run" / "results.json").records


# --------------------------------------------------------------------------- bit depth and mode

GREY = np.tile(np.linspace(0, 255, 16).round().astype(np.uint8), (16, 1))  # a left-to-right ramp


class Encoding(NamedTuple):
    name: str
    file: str
    image: Callable[[np.ndarray], Image.Image]  # from 8-bit grey to the encoded image


ENCODINGS = [
    Encoding("16-bit grey PNG", "a.png", lambda g: Image.fromarray(g.astype(np.uint16) * 257)),
    Encoding("16-bit grey TIFF", "a.tif", lambda g: Image.fromarray(g.astype(np.uint16) * 257)),
    Encoding("32-bit integer TIFF holding 16-bit data", "a.tif",
             lambda g: Image.fromarray(g.astype(np.int32) * 257)),
    Encoding("32-bit float TIFF in [0, 1]", "a.tif", lambda g: Image.fromarray(g.astype(np.float32) / 255)),
]


@pytest.mark.parametrize("case", ENCODINGS, ids=[c.name for c in ENCODINGS])
def test_images_of_any_bit_depth_load_like_their_8_bit_version(case, tmp_path):
    from robustcv.data.imagefolder import load_image_folder

    for name, pixels in (("dark", GREY // 4), ("ramp", GREY)):
        (tmp_path / name).mkdir()
        Image.fromarray(pixels).save(tmp_path / name / "reference.png")
        case.image(pixels).save(tmp_path / name / case.file)
    images, labels, classes = load_image_folder(tmp_path, "imgs", 16)
    assert classes == ("dark", "ramp") and len(images) == 4
    for k in (0, 1):
        encoded, reference = images[labels == k].int()  # files sorted: a.* before reference.png
        assert (encoded - reference).abs().max() <= 1, (case.name, encoded.float().mean(), reference.float().mean())
