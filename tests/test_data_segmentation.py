"""Segmentation file datasets: ``voc*`` (VOCdevkit) and ``segfolder:PATH``, read from tiny real trees."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from robustcv.data import DataSpec, as_tensors, get_dataset
from robustcv.data.palette import class_colors, ignore_color, pil_palette
from robustcv.data.segfiles import SegmentationFiles, read_mask
from robustcv.data.voc import VOC_CLASSES
from robustcv.errors import UserError

IGNORE = 255
VOC_SIZES = {"a": (40, 30), "b": (30, 52), "c": (48, 48), "d": (64, 40), "e": (36, 60), "f": (50, 34)}
VOC_SPLITS = {"train": "a b c d", "val": "e f"}


def object_mask(width: int, height: int, label: int) -> np.ndarray:
    """Background 0, a ``label`` rectangle with a 2-pixel 255 border around it, VOC style."""
    mask = np.zeros((height, width), np.uint8)
    mask[height // 4 - 2 : 3 * height // 4 + 2, width // 4 - 2 : 3 * width // 4 + 2] = IGNORE
    mask[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = label
    return mask


def save_mask(path: Path, mask: np.ndarray, palette: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(mask)
    if palette:
        image.putpalette(pil_palette())  # an L image with a palette becomes mode "P"
    image.save(path)


def save_image(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def noise_image(width: int, height: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def make_voc(root: Path, year: str = "2012") -> Path:
    folder = root / "VOCdevkit" / f"VOC{year}"
    for i, (name, (w, h)) in enumerate(VOC_SIZES.items()):
        save_image(folder / "JPEGImages" / f"{name}.jpg", noise_image(w, h, i))
        save_mask(folder / "SegmentationClass" / f"{name}.png", object_mask(w, h, label=i + 10))
    lists = folder / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    for split, names in VOC_SPLITS.items():
        (lists / f"{split}.txt").write_text("\n".join(names.split()) + "\n")
    return folder


def voc_spec(root: Path, **kwargs) -> DataSpec:
    return DataSpec(**{"name": "voc", "root": str(root), "task": "segmentation", "val_fraction": 0.25, **kwargs})


def test_voc_builds_21_classes_fixed_size_splits(tmp_path):
    make_voc(tmp_path)
    splits = get_dataset(voc_spec(tmp_path, image_size=24))
    info = splits.info
    assert info.classes == ("background",) + VOC_CLASSES and len(VOC_CLASSES) == 20
    assert (info.task, info.channels, info.image_size, info.ignore_index, info.hflip_ok) == (
        "segmentation", 3, (24, 24), IGNORE, True)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (3, 1, 2)
    for split in (splits.train, splits.val, splits.test):
        x, y = as_tensors(split)
        assert x.shape == (len(split), 3, 24, 24) and x.dtype == torch.float32 and 0 <= x.min() <= x.max() <= 1
        assert y.shape == (len(split), 24, 24) and y.dtype == torch.long
    assert set(as_tensors(splits.test)[1].unique().tolist()) == {0, 14, 15, IGNORE}  # e, f: labels 14, 15


def test_voc_palette_indices_and_borders_are_read_exactly(tmp_path):
    folder = make_voc(tmp_path)
    expected = object_mask(48, 48, label=12)  # "c" is already square: the eval view is the file itself
    assert Image.open(folder / "SegmentationClass" / "c.png").mode == "P"
    assert np.array_equal(read_mask(folder / "SegmentationClass" / "c.png"), expected)
    dataset = SegmentationFiles([(folder / "JPEGImages" / "c.jpg", folder / "SegmentationClass" / "c.png")], 48,
                                train=False)
    assert torch.equal(dataset[0][1], torch.from_numpy(expected).long())


def test_voc_split_is_seeded_and_years_are_separate_names(tmp_path):
    make_voc(tmp_path, year="2007")
    first = get_dataset(voc_spec(tmp_path, name="voc2007", seed=3))
    again = get_dataset(voc_spec(tmp_path, name="VOC2007", seed=3))
    assert first.train.pairs == again.train.pairs and first.val.pairs[0] not in first.train.pairs
    with pytest.raises(UserError, match="VOC2012"):
        get_dataset(voc_spec(tmp_path))  # voc = 2012, not there


def test_absent_voc_names_the_expected_path(tmp_path):
    with pytest.raises(UserError) as err:
        get_dataset(voc_spec(tmp_path / "nowhere"))
    expected = tmp_path / "nowhere" / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "train.txt"
    assert str(expected) in str(err.value) and "VOCtrainval_11-May-2012.tar" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("damage", ["missing mask", "missing image", "mis-sized mask", "rgb mask"])
def test_voc_file_errors_name_the_file(tmp_path, damage):
    folder = make_voc(tmp_path)
    image, mask = folder / "JPEGImages" / "b.jpg", folder / "SegmentationClass" / "b.png"
    if damage == "missing mask":
        mask.unlink()
    elif damage == "missing image":
        image.unlink()
    elif damage == "mis-sized mask":
        save_mask(mask, object_mask(31, 52, 11))
    else:
        Image.new("RGB", VOC_SIZES["b"], (128, 0, 0)).save(mask)
    with pytest.raises(UserError, match="b.png" if "mask" in damage else "b.jpg"):
        get_dataset(voc_spec(tmp_path))


def test_the_registry_refuses_classification_and_dispatches_multilabel(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="offers task"):
        get_dataset(voc_spec(tmp_path, task="classification"))
    calls = []
    from robustcv.data import voc_multilabel

    built = SimpleNamespace(info=SimpleNamespace(classes=("aeroplane", "bicycle")))  # what get_dataset hands back
    fake = lambda spec, year: calls.append((spec.name, year)) or built  # noqa: E731
    monkeypatch.setattr(voc_multilabel, "build_voc_multilabel", fake)
    assert get_dataset(voc_spec(tmp_path, task="multilabel")) is built
    get_dataset(voc_spec(tmp_path, name="voc2009", task="multilabel"))
    assert calls == [("voc", "2012"), ("voc2009", "2009")]


def square_pair(tmp_path: Path, width: int = 60, height: int = 40) -> tuple[Path, Path]:
    """A bright square (class 3) on a grey background; images are PNG so pixels are exact."""
    pixels = np.full((height, width, 3), 50, np.uint8)
    mask = np.zeros((height, width), np.uint8)
    pixels[10:26, 30:46] = 255
    mask[10:26, 30:46] = 3
    save_image(tmp_path / "square.png", pixels)
    save_mask(tmp_path / "square_mask.png", mask, palette=False)
    return tmp_path / "square.png", tmp_path / "square_mask.png"


def _eroded(region: torch.Tensor) -> torch.Tensor:
    """Pixels whose 3x3 neighbourhood lies entirely in ``region`` and inside the window (what lies
    beyond the crop may blur into the edge pixels)."""
    padded = F.pad(region.float()[None, None], (1, 1, 1, 1), value=0.0)
    return -F.max_pool2d(-padded, 3, 1)[0, 0] > 0


def test_train_scale_and_crop_keep_image_and_mask_aligned(tmp_path):
    dataset = SegmentationFiles([square_pair(tmp_path)], 32, train=True)
    areas, padded = set(), 0
    for seed in range(60):
        torch.manual_seed(seed)
        image, mask = dataset[0]
        assert image.shape == (3, 32, 32) and mask.shape == (32, 32) and set(mask.unique().tolist()) <= {0, 3, IGNORE}
        bright, grey = image.mean(0) > 0.6, (image.mean(0) - 50 / 255).abs() < 0.02
        assert bright[_eroded(mask == 3)].all() and grey[_eroded(mask == 0)].all()
        assert torch.equal(image.amax(0) == 0, mask == IGNORE)  # padding: black image exactly where ignored
        areas.add(int((mask == 3).sum()))
        padded += bool((mask == IGNORE).any())
    assert len(areas) > 10 and 0 < padded < 60  # scales and crops really vary; some need padding


def test_train_items_are_reproducible_under_torch_seed(tmp_path):
    dataset = SegmentationFiles([square_pair(tmp_path)], 32, train=True)
    torch.manual_seed(7)
    first = dataset[0]
    torch.manual_seed(7)
    again = dataset[0]
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


def test_eval_view_matches_pil_resize_and_center_crop(tmp_path):
    """Against PIL: bilinear (antialiased) image, nearest mask, then the central 32x32."""
    rng = np.random.default_rng(0)
    save_image(tmp_path / "x.png", noise_image(60, 40, 0))  # shorter side 40 -> 32, longer 60 -> 48
    save_mask(tmp_path / "y.png", rng.integers(0, 21, (40, 60), dtype=np.uint8))
    dataset = SegmentationFiles([(tmp_path / "x.png", tmp_path / "y.png")], 32, train=False)
    image, mask = dataset[0]
    ref_mask = np.array(Image.open(tmp_path / "y.png").resize((48, 32), Image.Resampling.NEAREST))[:, 8:40]
    ref_image = np.array(Image.open(tmp_path / "x.png").resize((48, 32), Image.Resampling.BILINEAR))[:, 8:40]
    assert torch.equal(mask, torch.from_numpy(ref_mask).long())
    assert torch.allclose(image, torch.from_numpy(ref_image).permute(2, 0, 1) / 255, atol=2 / 255)
    image.zero_()  # items are fresh tensors: the cached view is not modified
    assert torch.equal(dataset[0][1], mask) and dataset[0][0].amax() > 0


def make_segfolder(root: Path, classes: str | None = "background\nleaf\nspot\n") -> Path:
    for i, (w, h) in enumerate([(40, 30), (30, 44), (52, 36), (32, 32), (36, 48)]):
        suffix = ".jpg" if i % 2 else ".png"
        save_image(root / "images" / f"img{i}{suffix}", noise_image(w, h, i))
        save_mask(root / "masks" / f"img{i}.png", object_mask(w, h, label=1 + i % 2), palette=False)
    if classes is not None:
        (root / "classes.txt").write_text(classes)
    return root


def folder_spec(root: Path, **kwargs) -> DataSpec:
    return DataSpec(name=f"segfolder:{root}", task="segmentation", test_fraction=0.2, val_fraction=0.25, **kwargs)


def test_segfolder_reads_classes_and_grayscale_masks(tmp_path):
    root = make_segfolder(tmp_path / "leaves")
    splits = get_dataset(folder_spec(root, image_size=32))
    assert splits.info.classes == ("background", "leaf", "spot") and splits.info.image_size == (32, 32)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (3, 1, 1)
    ids = torch.cat([as_tensors(s)[1].flatten() for s in (splits.train, splits.val, splits.test)])
    assert set(ids.unique().tolist()) == {0, 1, 2, IGNORE}
    sq = SegmentationFiles([(root / "images" / "img3.jpg", root / "masks" / "img3.png")], 32, train=False)
    assert torch.equal(sq[0][1], torch.from_numpy(object_mask(32, 32, 2)).long())


def test_segfolder_without_classes_txt_names_classes_by_id_and_warns_of_strays(tmp_path):
    root = make_segfolder(tmp_path / "f", classes=None)
    (root / "images" / "notes.txt").write_text("not an image")
    with pytest.warns(UserWarning, match="notes.txt"):
        assert get_dataset(folder_spec(root)).info.classes == ("class_0", "class_1", "class_2")


def test_segfolder_refuses_classification(tmp_path):
    with pytest.raises(UserError, match="offers task"):
        get_dataset(DataSpec(name=f"segfolder:{make_segfolder(tmp_path / 'f')}"))


def _no_mask(root: Path) -> str:
    (root / "masks" / "img2.png").unlink()
    return "img2.png"


def _no_image(root: Path) -> str:
    save_mask(root / "masks" / "stray.png", object_mask(40, 30, 1), palette=False)
    return "stray.png"


def _mis_sized(root: Path) -> str:
    save_mask(root / "masks" / "img4.png", object_mask(37, 48, 1), palette=False)
    return "img4.png"


def _unknown_label(root: Path) -> str:
    save_mask(root / "masks" / "img1.png", object_mask(30, 44, 3), palette=False)  # classes.txt: ids 0..2
    return "img1.png"


def _empty(root: Path) -> str:
    for path in list((root / "images").iterdir()) + list((root / "masks").iterdir()):
        path.unlink()
    return "no images"


@pytest.mark.parametrize("damage", [_no_mask, _no_image, _mis_sized, _unknown_label, _empty],
                         ids=lambda f: f.__name__.strip("_"))
def test_segfolder_errors_name_the_file(tmp_path, damage):
    root = make_segfolder(tmp_path / "f")
    expected = damage(root)
    with pytest.raises(UserError, match=expected.replace(".", r"\.")):
        get_dataset(folder_spec(root))


def test_missing_segfolder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        get_dataset(folder_spec(tmp_path / "absent"))


def test_class_colors_follow_the_voc_colour_map():
    colors = class_colors(256)
    assert colors[:3] == [(0, 0, 0), (128, 0, 0), (0, 128, 0)]
    assert colors[15] == (192, 128, 128) and ignore_color() == colors[IGNORE] == (224, 224, 192)  # person; border
    assert len(set(colors)) == 256 and pil_palette()[45:48] == [192, 128, 128]
