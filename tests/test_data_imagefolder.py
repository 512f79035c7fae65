"""``imagefolder:PATH``: class-per-folder images, skipped files, error paths, verbatim names."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robustcv.data import DataSpec, as_tensors, get_dataset
from robustcv.errors import UserError

XSS = "<img src=x onerror=alert(1)>"


def save(path: Path, colour: tuple[int, int, int], size=(40, 30), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).convert(mode).save(path)


def make_folder(root: Path, per_class: int = 10) -> Path:
    for name, colour in [("cat", (255, 0, 0)), ("dog", (0, 255, 0)), (XSS, (0, 0, 255))]:
        for i in range(per_class):
            save(root / name / f"{i}.png", colour, size=(40 + i, 30))
    return root


def test_reads_classes_resizes_and_keeps_names_verbatim(tmp_path):
    root = make_folder(tmp_path / "imgs")
    save(root / "dog" / "nested" / "extra.jpg", (0, 255, 0))
    (root / ".DS_Store").write_bytes(b"junk")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean folder warns about nothing
        splits = get_dataset(DataSpec(name=f"imagefolder:{root}", image_size=16, test_fraction=0.2, val_fraction=0.25))
    info = splits.info
    assert info.classes == (XSS, "cat", "dog")  # sorted like torchvision's ImageFolder, verbatim
    assert (info.name, info.channels, info.image_size, info.hflip_ok) == (f"imagefolder:{root}", 3, (16, 16), True)
    assert len(splits.train) + len(splits.val) + len(splits.test) == 31
    x, y = as_tensors(splits.train)
    assert x.shape[1:] == (3, 16, 16)
    colours = torch.tensor([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]])  # per class index
    per_pixel = x.permute(0, 2, 3, 1)
    assert torch.allclose(per_pixel, colours[y][:, None, None, :].expand_as(per_pixel), atol=0.02)
    assert torch.allclose(torch.tensor(info.mean), x.mean(dim=(0, 2, 3)), atol=1e-4)


def test_grey_and_transparent_images_become_rgb(tmp_path):
    root = tmp_path / "imgs"
    save(root / "a" / "grey.png", (200, 200, 200), mode="L")
    save(root / "a" / "alpha.png", (10, 20, 30), mode="RGBA")
    for i in range(4):
        save(root / "b" / f"{i}.bmp", (0, 0, 0))
    x, _ = as_tensors(get_dataset(DataSpec(name=f"imagefolder:{root}", image_size=8, test_fraction=0.5)).train)
    assert x.shape[1] == 3


def test_default_size_is_64(tmp_path):
    splits = get_dataset(DataSpec(name=f"imagefolder:{make_folder(tmp_path / 'imgs', per_class=5)}"))
    assert splits.info.image_size == (64, 64) and splits.train[0][0].shape == (3, 64, 64)


def test_non_image_files_are_skipped_with_a_warning_naming_them(tmp_path):
    root = make_folder(tmp_path / "imgs", per_class=5)
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    (root / "README.md").write_text("stray file at the top")
    with pytest.warns(UserWarning, match=r"skipped 3 file\(s\).*README\.md.*notes\.txt.*broken\.jpg"):
        splits = get_dataset(DataSpec(name=f"imagefolder:{root}"))
    assert len(splits.train) + len(splits.val) + len(splits.test) == 15


@pytest.mark.parametrize(
    "layout, message",
    [
        ("missing", "does not exist"),
        ("empty", "has no class folders"),
        ("files-only", "has no class folders"),
        ("one-class", "single class folder 'cat'"),
        ("empty-class", "class folder 'dog' .* contains no readable images"),
    ],
)
def test_unusable_folders_are_user_errors(tmp_path, layout, message):
    root = tmp_path / "imgs"
    if layout != "missing":
        root.mkdir()
    if layout == "files-only":
        save(root / "a.png", (1, 2, 3))
    if layout in ("one-class", "empty-class"):
        save(root / "cat" / "a.png", (1, 2, 3))
    if layout == "empty-class":
        (root / "dog").mkdir()
        (root / "dog" / "readme.txt").write_text("x")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(UserError, match=message):
            get_dataset(DataSpec(name=f"imagefolder:{root}"))


def test_split_is_deterministic_and_stratified(tmp_path):
    root = make_folder(tmp_path / "imgs", per_class=10)
    spec = DataSpec(name=f"imagefolder:{root}", image_size=8, test_fraction=0.3, seed=5)
    first, second = get_dataset(spec), get_dataset(spec)
    assert torch.equal(as_tensors(first.test)[0], as_tensors(second.test)[0])
    assert torch.bincount(as_tensors(first.test)[1]).tolist() == [3, 3, 3]
    assert np.isclose(sum(len(s) for s in (first.train, first.val, first.test)), 30)
