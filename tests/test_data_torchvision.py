"""torchvision-backed datasets, each read from tiny files written here in the real on-disk format.

The network is cut for every test in this module (socket connect and name resolution raise),
so a download attempt can only fail, and fail fast.

CIFAR and SVHN: torchvision verifies the md5 of each official file, which tiny files cannot
match. Those tests replace ``check_integrity`` in torchvision's cifar/svhn modules by a
"file exists" check — the narrowest bypass; the production code keeps the md5 check, and
``test_cifar_with_unofficial_files_fails_the_real_integrity_check`` exercises it.
"""
from __future__ import annotations

import gzip
import os
import pickle
import socket
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd

from robustcv.data import DataSpec, as_tensors, get_dataset
from robustcv.data import torchvision_sets
from robustcv.errors import UserError

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def exists_only_integrity(monkeypatch):
    def exists(fpath, md5=None):
        return os.path.isfile(fpath)

    monkeypatch.setattr(tvd.cifar, "check_integrity", exists)
    monkeypatch.setattr(tvd.svhn, "check_integrity", exists)


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    """The MNIST idx format: magic (0, 0, type 0x08 = ubyte, ndim), big-endian dims, then data."""
    payload = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
    path.write_bytes(gzip.compress(payload) if compress else payload)


def write_mnist(root: Path, folder: str, n_train: int, n_test: int, compress: bool) -> dict[str, np.ndarray]:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    arrays = {
        "train-images-idx3-ubyte": RNG.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": RNG.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 10,
    }
    for name, array in arrays.items():
        write_idx(raw / name, array, compress)
    return arrays


@pytest.mark.parametrize(
    "name, folder, compress, hflip",
    [("mnist", "MNIST", False, False), ("fashion-mnist", "FashionMNIST", True, True)],
    ids=["mnist-raw", "fashion-gz"],
)
def test_mnist_family_reads_idx_files(tmp_path, name, folder, compress, hflip):
    arrays = write_mnist(tmp_path, folder, n_train=50, n_test=20, compress=compress)
    splits = get_dataset(DataSpec(name=name, root=str(tmp_path), val_fraction=0.2))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (40, 10, 20)
    x, y = as_tensors(splits.test)
    expected = torch.from_numpy(arrays["t10k-images-idx3-ubyte"]).float().div(255).unsqueeze(1)
    assert torch.allclose(x, expected) and y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    info = splits.info
    assert (info.channels, info.image_size, info.hflip_ok, info.num_classes) == (1, (28, 28), hflip, 10)
    if name == "fashion-mnist":
        assert info.classes[0] == "T-shirt/top"
    image, target = splits.train[0]
    assert image.dtype == torch.float32 and image.shape == (1, 28, 28) and isinstance(target, int)


def write_cifar(root: Path, hundred: bool, n_per_batch: int) -> dict[str, dict]:
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    label_key, n_classes = ("fine_labels", 100) if hundred else ("labels", 10)
    batches = ["train", "test"] if hundred else [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    written = {}
    for name in batches:
        entry = {
            "data": RNG.integers(0, 256, (n_per_batch, 3072)).astype(np.uint8),
            label_key: [int(v) for v in np.arange(n_per_batch) % n_classes],
        }
        (folder / name).write_bytes(pickle.dumps(entry))
        written[name] = entry
    meta_name, meta_key = ("meta", "fine_label_names") if hundred else ("batches.meta", "label_names")
    names = [f"class<{i}>" for i in range(n_classes)]
    (folder / meta_name).write_bytes(pickle.dumps({meta_key: names}))
    return written


def test_cifar10_reads_python_batches(tmp_path, exists_only_integrity):
    written = write_cifar(tmp_path, hundred=False, n_per_batch=20)
    splits = get_dataset(DataSpec(name="cifar10", root=str(tmp_path), val_fraction=0.1))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (90, 10, 20)
    x, y = as_tensors(splits.test)
    test = written["test_batch"]
    expected = torch.from_numpy(test["data"].reshape(-1, 3, 32, 32)).float().div(255)
    assert torch.allclose(x, expected) and y.tolist() == test["labels"]
    info = splits.info
    assert info.classes[3] == "class<3>" and (info.channels, info.image_size, info.hflip_ok) == (3, (32, 32), True)


def test_cifar100_reads_fine_labels(tmp_path, exists_only_integrity):
    written = write_cifar(tmp_path, hundred=True, n_per_batch=200)
    splits = get_dataset(DataSpec(name="cifar100", root=str(tmp_path), val_fraction=0.5))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (100, 100, 200)
    assert splits.info.num_classes == 100
    assert as_tensors(splits.test)[1].tolist() == written["test"]["fine_labels"]


def test_cifar_archive_placed_by_hand_is_extracted(tmp_path, exists_only_integrity):
    staging = tmp_path / "staging"
    write_cifar(staging, hundred=False, n_per_batch=10)
    root = tmp_path / "data"
    root.mkdir()
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(staging / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    splits = get_dataset(DataSpec(name="cifar10", root=str(root)))
    assert len(splits.test) == 10


def test_svhn_reads_mat_files_and_maps_label_10_to_0(tmp_path, exists_only_integrity):
    from scipy.io import savemat

    for split, n in (("train", 30), ("test", 12)):
        images = RNG.integers(0, 256, (32, 32, 3, n)).astype(np.uint8)  # SVHN stores HWCN
        labels = (np.arange(n) % 10 + 1).reshape(-1, 1).astype(np.uint8)  # 1..10, 10 is digit 0
        savemat(tmp_path / f"{split}_32x32.mat", {"X": images, "y": labels})
    splits = get_dataset(DataSpec(name="svhn", root=str(tmp_path), val_fraction=0.2))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (24, 6, 12)
    x, y = as_tensors(splits.test)
    assert torch.allclose(x, torch.from_numpy(images.transpose(3, 2, 0, 1).copy()).float().div(255))
    assert y.tolist() == [(i % 10 + 1) % 10 for i in range(12)]
    assert splits.info.hflip_ok is False and splits.info.classes == tuple("0123456789")


@pytest.mark.parametrize(
    "name, path",
    [
        ("cifar10", "cifar-10-batches-py"),
        ("cifar100", "cifar-100-python"),
        ("mnist", "MNIST/raw"),
        ("fashion-mnist", "FashionMNIST/raw"),
        ("svhn", ""),
    ],
)
def test_offline_and_absent_is_one_user_error_naming_the_folder(tmp_path, name, path):
    with pytest.raises(UserError) as caught:
        get_dataset(DataSpec(name=name, root=str(tmp_path / "data")))
    message = str(caught.value)
    assert "\n" not in message
    assert f"{name} not found under {tmp_path / 'data' / path} (missing " in message
    assert "could not be downloaded (offline?" in message and "put " in message


def test_failed_download_attempt_is_a_user_error_and_restores_the_socket_timeout(tmp_path, monkeypatch):
    calls = []

    def failing_download(self):
        calls.append(socket.getdefaulttimeout())
        raise RuntimeError("Error downloading cifar-10-python.tar.gz:\nTried a mirror")

    monkeypatch.setattr(torchvision_sets, "_reachable", lambda url, timeout=0: True)
    monkeypatch.setattr(tvd.CIFAR10, "download", failing_download)
    before = socket.getdefaulttimeout()
    with pytest.raises(UserError, match=r"cifar10 not found under .*cifar-10-batches-py .*put the files of"):
        get_dataset(DataSpec(name="cifar10", root=str(tmp_path)))
    assert calls == [torchvision_sets.SOCKET_TIMEOUT_S]
    assert socket.getdefaulttimeout() == before


def test_cifar_with_unofficial_files_fails_the_real_integrity_check(tmp_path):
    write_cifar(tmp_path, hundred=False, n_per_batch=5)
    with pytest.raises(UserError, match=r"files under .*cifar-10-batches-py are present but unusable \(Dataset not found or corrupted"):
        get_dataset(DataSpec(name="cifar10", root=str(tmp_path)))


def test_truncated_idx_file_is_a_user_error(tmp_path):
    write_mnist(tmp_path, "MNIST", n_train=10, n_test=10, compress=False)
    path = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UserError, match="MNIST/raw are present but unusable"):
        get_dataset(DataSpec(name="mnist", root=str(tmp_path)))


def test_offline_probe_answers_quickly():
    assert torchvision_sets._reachable("https://www.cs.toronto.edu/x", timeout=1.0) is False
