"""Multi-label datasets: the embedded ``shapes`` variant, ``voc`` label sets and ``csv:PATH``,
read from tiny trees written here in the real formats."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robustcv.cli import main
from robustcv.data import DataSpec, as_tensors, get_dataset
from robustcv.data.shapes_multilabel import generate_multishapes
from robustcv.data.voc import VOC_CLASSES
from robustcv.errors import UserError
from robustcv.tasks import Task


def save_image(path: Path, seed: int, size: tuple[int, int] = (40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


# ------------------------------------------------------------------------------------------- shapes
def test_shapes_images_hold_one_to_three_different_shapes_and_are_deterministic():
    data = generate_multishapes(n=300, size=32, seed=3)
    counts = data.labels.sum(dim=1)
    assert data.images.dtype == torch.uint8 and data.images.shape == (300, 3, 32, 32)
    assert set(counts.tolist()) == {1, 2, 3} and set(data.labels.unique().tolist()) == {0, 1}
    assert (data.labels.sum(dim=0) > 40).all()  # every class appears often
    again = generate_multishapes(n=300, size=32, seed=3)
    assert torch.equal(again.images, data.images) and torch.equal(again.labels, data.labels)
    assert not torch.equal(generate_multishapes(n=300, size=32, seed=4).labels, data.labels)


def test_shapes_pixels_follow_the_labels():
    """An image with more shapes differs more from its smooth background: the shapes are drawn."""
    data = generate_multishapes(n=600, size=32, seed=0)
    x = data.images.float() / 255
    roughness = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)
    counts = data.labels.sum(dim=1)
    assert roughness[counts == 3].mean() > roughness[counts == 1].mean() * 1.2


def test_shapes_multilabel_splits_are_disjoint_and_stratified_by_label_set():
    splits = get_dataset(DataSpec(name="shapes", task="multilabel"))
    assert splits.info.task == Task.MULTILABEL and splits.info.classes == ("circle", "square", "triangle", "cross",
                                                                            "star")
    parts = [as_tensors(s) for s in (splits.train, splits.val, splits.test)]
    assert [len(y) for _, y in parts] == [2160, 240, 600]
    assert all(y.shape[1] == 5 and y.dtype == torch.long for _, y in parts)
    rows = [{bytes(img.numpy()) for img in (x * 255).round().to(torch.uint8)} for x, _ in parts]
    assert not (rows[0] & rows[2]) and not (rows[1] & rows[2])
    train_rate, test_rate = parts[0][1].float().mean(0), parts[2][1].float().mean(0)
    assert torch.allclose(train_rate, test_rate, atol=0.02)


# ---------------------------------------------------------------------------------------------- voc
def annotation(objects: list[tuple[str, int]]) -> str:
    body = "".join(f"<object><name>{name}</name><pose>Left</pose><truncated>0</truncated>"
                   f"<difficult>{difficult}</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax>"
                   f"<ymax>9</ymax></bndbox></object>" for name, difficult in objects)
    return f"<annotation><folder>VOC2012</folder><size><width>40</width><height>30</height></size>{body}</annotation>"


VOC_TREE = {  # name -> objects (class, difficult)
    "2008_000001": [("dog", 0), ("person", 0)],
    "2008_000002": [("cat", 0), ("cat", 0), ("sofa", 1)],
    "2008_000003": [("car", 1)],
    "2008_000004": [("aeroplane", 0)],
    "2008_000005": [("bus", 0), ("car", 0)],
    "2008_000006": [("tvmonitor", 0)],
}


def make_voc(root: Path, year: str = "2012") -> Path:
    folder = root / "VOCdevkit" / f"VOC{year}"
    (folder / "ImageSets" / "Main").mkdir(parents=True)
    (folder / "Annotations").mkdir()
    for i, (name, objects) in enumerate(VOC_TREE.items()):
        (folder / "Annotations" / f"{name}.xml").write_text(annotation(objects))
        save_image(folder / "JPEGImages" / f"{name}.jpg", i)
    names = list(VOC_TREE)
    (folder / "ImageSets" / "Main" / "train.txt").write_text("\n".join(names[:4]) + "\n")
    (folder / "ImageSets" / "Main" / "val.txt").write_text("\n".join(names[4:]) + "\n")
    return folder


def voc_spec(root: Path, **kwargs) -> DataSpec:
    return DataSpec(name="voc", root=str(root), task="multilabel", val_fraction=0.25, image_size=24, **kwargs)


def _label_set(row: torch.Tensor) -> set[str]:
    return {VOC_CLASSES[k] for k in row.nonzero().flatten().tolist()}


def test_voc_labels_come_from_the_annotations_without_difficult_objects(tmp_path):
    make_voc(tmp_path)
    splits = get_dataset(voc_spec(tmp_path))
    assert splits.info.classes == VOC_CLASSES and splits.info.image_size == (24, 24)
    x_pool = torch.cat([as_tensors(splits.train)[0], as_tensors(splits.val)[0]])
    y_pool = torch.cat([as_tensors(splits.train)[1], as_tensors(splits.val)[1]])
    x_test, y_test = as_tensors(splits.test)
    assert len(as_tensors(splits.val)[1]) == 1 and x_pool.shape == (4, 3, 24, 24)
    pool_sets = sorted(map(sorted, (_label_set(r) for r in y_pool)))
    assert pool_sets == sorted([["dog", "person"], ["cat"], [], ["aeroplane"]])  # difficult sofa, car left out
    assert [_label_set(r) for r in y_test] == [{"bus", "car"}, {"tvmonitor"}]  # val.txt is the test set, in order


@pytest.mark.parametrize("damage, message", [
    ("unknown", "unknown class 'unicorn'"), ("broken", "not valid XML"), ("nameless", "without a <name>"),
    ("no-image", "2008_000002.jpg"),
], ids=["unknown-class", "broken-xml", "nameless-object", "missing-image"])
def test_voc_annotation_errors_name_the_file(tmp_path, damage, message):
    folder = make_voc(tmp_path)
    xml = folder / "Annotations" / "2008_000002.xml"
    if damage == "unknown":
        xml.write_text(annotation([("unicorn", 0)]))
    elif damage == "broken":
        xml.write_text("<annotation><object>")
    elif damage == "nameless":
        xml.write_text("<annotation><object><difficult>0</difficult></object></annotation>")
    else:
        (folder / "JPEGImages" / "2008_000002.jpg").unlink()
    with pytest.raises(UserError, match=message) as info:
        get_dataset(voc_spec(tmp_path))
    assert "2008_000002" in str(info.value) and "\n" not in str(info.value)


def test_absent_voc_is_one_line_naming_main_image_sets(tmp_path, capsys):
    code = main(["train", "--task", "multilabel", "--dataset", "voc2007", "--data-root", str(tmp_path / "none"),
                 "--models-dir", str(tmp_path / "models"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "VOC2007" in err[0] and str(Path("ImageSets") / "Main" / "train.txt") in err[0]
    assert "VOCtrainval_06-Nov-2007.tar" in err[0]


# ---------------------------------------------------------------------------------------------- csv
def make_csv(root: Path, text: str, images: int = 10) -> Path:
    for i in range(images):
        save_image(root / "img" / f"{i}.png", i)
    path = root / "labels.csv"
    path.write_text(text)
    return path


LIST_ROWS = ["cat dog", "dog", "", "cat;bird", "bird|dog", "cat", "dog cat bird", "bird", "cat", "dog"]


def list_csv(root: Path) -> Path:
    return make_csv(root, "image,labels\n" + "".join(f"img/{i}.png,{labels}\n" for i, labels in enumerate(LIST_ROWS)))


def csv_spec(path: Path) -> DataSpec:
    return DataSpec(name=f"csv:{path}", task="multilabel", val_fraction=0.2, test_fraction=0.2, image_size=16)


def _all_items(splits) -> tuple[torch.Tensor, torch.Tensor]:
    parts = [as_tensors(s) for s in (splits.train, splits.val, splits.test)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _expected_images(root: Path, size: int = 16) -> dict[bytes, int]:
    from robustcv.data.multilabel_files import read_images

    images = read_images([root / "img" / f"{i}.png" for i in range(10)], size)
    return {bytes(img.numpy()): i for i, img in enumerate(images)}


def test_csv_label_lists_read_every_separator_and_sort_the_classes(tmp_path):
    splits = get_dataset(csv_spec(list_csv(tmp_path)))
    assert splits.info.classes == ("bird", "cat", "dog") and splits.info.task == Task.MULTILABEL
    x, y = _all_items(splits)
    assert len(y) == 10 and [len(as_tensors(s)[1]) for s in (splits.train, splits.val, splits.test)] == [6, 2, 2]
    index = _expected_images(tmp_path)
    for image, label in zip(x, y):
        row = LIST_ROWS[index[bytes((image * 255).round().to(torch.uint8).numpy())]]
        expected = {name for name in row.replace(";", " ").replace("|", " ").split()}
        assert {splits.info.classes[k] for k in label.nonzero().flatten().tolist()} == expected


def test_csv_one_column_per_class(tmp_path):
    rows = "".join(f"img/{i}.png,{i % 2},{1 - i % 2},{int(i < 3)}\n" for i in range(10))
    splits = get_dataset(csv_spec(make_csv(tmp_path, "image,cat,dog,person\n" + rows)))
    assert splits.info.classes == ("cat", "dog", "person")
    x, y = _all_items(splits)
    index = _expected_images(tmp_path)
    for image, label in zip(x, y):
        i = index[bytes((image * 255).round().to(torch.uint8).numpy())]
        assert label.tolist() == [i % 2, 1 - i % 2, int(i < 3)]


def test_csv_classes_txt_fixes_the_order_and_refuses_unknown_names(tmp_path):
    path = list_csv(tmp_path)
    (tmp_path / "classes.txt").write_text("dog\ncat\nbird\nfish\n")
    assert get_dataset(csv_spec(path)).info.classes == ("dog", "cat", "bird", "fish")
    (tmp_path / "classes.txt").write_text("dog\ncat\n")
    with pytest.raises(UserError, match=r"line 5: unknown class 'bird'"):
        get_dataset(csv_spec(path))


@pytest.mark.parametrize("text, message", [
    ("image,labels\nimg/0.png,cat\nimg/1.png,cat,dog\n", r"line 3: expected 2 columns"),
    ("image,cat,dog\nimg/0.png,1,0\nimg/1.png,1,yes\n", r"line 3: column 'dog' holds 'yes'"),
    ("image,labels\nimg/0.png,cat\n,dog\n", r"line 3: the image path is empty"),
    ("image,labels\nimg/0.png,cat\nimg/99.png,dog\n", r"99.png"),
    ("image,labels\nimg/0.png,cat\nimg/1.png,cat\n", r"1 class\(es\)"),
    ("", r"is empty"),
    ("image\nimg/0.png\n", r"needs an image column and labels"),
], ids=["wrong-width", "not-0-1", "no-path", "missing-image", "one-class", "empty", "no-label-column"])
def test_malformed_csv_is_a_clear_error_naming_the_line(tmp_path, text, message):
    with pytest.raises(UserError, match=message):
        get_dataset(csv_spec(make_csv(tmp_path, text, images=2)))


def test_missing_csv_and_the_wrong_task_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        get_dataset(csv_spec(tmp_path / "absent.csv"))
    with pytest.raises(UserError, match="offers task"):
        get_dataset(DataSpec(name=f"csv:{list_csv(tmp_path)}", task="classification"))
