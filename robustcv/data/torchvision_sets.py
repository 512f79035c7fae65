"""MNIST, Fashion-MNIST, CIFAR-10/100 and SVHN through torchvision's own dataset classes.

Files live under ``spec.root`` in torchvision's layout (``MNIST/raw``, ``FashionMNIST/raw``,
``cifar-10-batches-py``, ``cifar-100-python``, and ``train_32x32.mat``/``test_32x32.mat``
directly in the root for SVHN). An archive the user dropped in place (MNIST ``*.gz`` in the raw
folder, a CIFAR ``*.tar.gz`` in the root) is extracted first. When the files are absent a
download is tried (``download=True``); offline that fails within seconds — a reachability probe
runs first and sockets get a short default timeout during the attempt — and ends in one
``UserError`` naming the folder and files to put in place. torchvision's md5 checks of the CIFAR
and SVHN files are kept.

Images are converted once at load to one ``uint8`` tensor ``[N, C, H, W]`` held in memory; each
item is scaled to float [0, 1] when read. The official test split is the test set; validation is
carved from the training split. Mean/std are the standard published constants.
"""
from __future__ import annotations

import gzip
import os
import shutil
import socket
import tarfile
import threading
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlparse

import numpy as np
import torch

from robustcv.data.base import DataInfo, DataSpec, Splits
from robustcv.data.common import warn_fixed_size
from robustcv.data.registry import register_dataset
from robustcv.data.splitting import train_val_indices
from robustcv.data.tensors import ImageTensorDataset
from robustcv.errors import UserError

PROBE_TIMEOUT_S = 5.0
SOCKET_TIMEOUT_S = 20.0
_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_DIGIT_CLASSES = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class _Source:
    """Where a torchvision dataset lives on disk and how to read it into tensors."""

    name: str
    folder: str  # relative to the root, "" for the root itself
    files: tuple[str, ...]
    archive: str  # what the user downloads by hand
    url: str  # probed for reachability before a download attempt
    open: Callable[[str, bool, bool], Any]  # (root, train, download) -> torchvision dataset
    to_tensors: Callable[[Any], tuple[torch.Tensor, torch.Tensor]]
    hflip_ok: bool
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...] | None = None  # None: take the dataset's own ``classes``


def _mnist_tensors(ds: Any) -> tuple[torch.Tensor, torch.Tensor]:
    return ds.data.unsqueeze(1).contiguous(), torch.as_tensor(ds.targets).long()


def _cifar_tensors(ds: Any) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
    return images, torch.as_tensor(ds.targets).long()


def _svhn_tensors(ds: Any) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(np.ascontiguousarray(ds.data)), torch.from_numpy(ds.labels).long()


def _tv(cls_name: str, split_kw: bool = False) -> Callable[[str, bool, bool], Any]:
    def open_(root: str, train: bool, download: bool) -> Any:
        import torchvision.datasets as tvd  # imported late: torchvision is slow to import

        cls = getattr(tvd, cls_name)
        if split_kw:
            return cls(root, split="train" if train else "test", download=download)
        return cls(root, train=train, download=download)

    return open_


_SOURCES = {
    "mnist": _Source(
        "mnist", "MNIST/raw", _MNIST_FILES, "the four MNIST *-ubyte(.gz) files",
        "https://ossci-datasets.s3.amazonaws.com/mnist/", _tv("MNIST"), _mnist_tensors,
        hflip_ok=False, mean=(0.1307,), std=(0.3081,), classes=_DIGIT_CLASSES,
    ),
    "fashion-mnist": _Source(
        "fashion-mnist", "FashionMNIST/raw", _MNIST_FILES, "the four Fashion-MNIST *-ubyte(.gz) files",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", _tv("FashionMNIST"), _mnist_tensors,
        hflip_ok=True, mean=(0.2860,), std=(0.3530,),
    ),
    "cifar10": _Source(
        "cifar10", "cifar-10-batches-py",
        ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch", "batches.meta"),
        "the files of 'cifar-10-python.tar.gz'", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        _tv("CIFAR10"), _cifar_tensors, hflip_ok=True,
        mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
    ),
    "cifar100": _Source(
        "cifar100", "cifar-100-python", ("train", "test", "meta"),
        "the files of 'cifar-100-python.tar.gz'", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        _tv("CIFAR100"), _cifar_tensors, hflip_ok=True,
        mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762),
    ),
    "svhn": _Source(
        "svhn", "", ("train_32x32.mat", "test_32x32.mat"), "'train_32x32.mat' and 'test_32x32.mat'",
        "http://ufldl.stanford.edu/housenumbers/train_32x32.mat", _tv("SVHN", split_kw=True), _svhn_tensors,
        hflip_ok=False, mean=(0.4377, 0.4438, 0.4728), std=(0.1980, 0.2010, 0.1970), classes=_DIGIT_CLASSES,
    ),
}
_ARCHIVES = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}


def _extract_local_archives(source: _Source, root: Path) -> None:
    """Unpack archives the user put in place by hand, so no download is needed."""
    folder = root / source.folder
    if source.folder.endswith("/raw"):
        for name in source.files:
            packed = folder / f"{name}.gz"
            if packed.is_file() and not (folder / name).exists():
                with gzip.open(packed, "rb") as src, open(folder / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    archive = root / _ARCHIVES.get(source.name, "\0")
    if source.name in _ARCHIVES and archive.is_file() and not folder.exists():
        with tarfile.open(archive, "r:gz") as tar:
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(root, **kwargs)


def _reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether ``url``'s host accepts a TCP connection within ``timeout`` (DNS included).

    Runs in a daemon thread because name resolution ignores socket timeouts. Behind a proxy the
    direct probe means nothing, so it answers True and the socket timeout bounds the attempt.
    """
    parsed = urlparse(url)
    if parsed.scheme in urllib.request.getproxies():
        return True
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    answer: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((parsed.hostname, port), timeout=timeout).close()
            answer.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answer)


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Give sockets without their own timeout (urllib's) a default, restored afterwards."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def _unavailable(source: _Source, root: str, local: BaseException, download: BaseException) -> UserError:
    """One line: what is missing (or unusable) where, why no download, what to put there."""
    shown = os.path.join(root, source.folder) if source.folder else root  # as the user spelled it
    folder = Path(os.path.expanduser(shown))
    missing = [f for f in source.files if not (folder / f).exists() and not (folder / f"{f}.gz").exists()]
    if missing:
        problem = f"not found under {shown} (missing {', '.join(missing)})"
    else:  # CIFAR/SVHN md5 mismatch, a truncated MNIST file...
        problem = f"files under {shown} are present but unusable ({_first_line(local)}; corrupt or not the official files?)"
    return UserError(
        f"{source.name} {problem} and could not be downloaded (offline? {_first_line(download)}); "
        f"put {source.archive} in {shown}{_archive_hint(source, root)}"
    )


def _archive_hint(source: _Source, root: str) -> str:
    archive = _ARCHIVES.get(source.name)
    return f" (or the archive itself in {root})" if archive else ""


def _open_split(source: _Source, root: str, train: bool) -> Any:
    """The torchvision dataset from local files, else downloaded, else a clear UserError."""
    try:
        return source.open(os.path.expanduser(root), train, False)
    except Exception as err:  # torchvision's "not found or corrupted", or unreadable files
        local = err
    try:
        if not _reachable(source.url):
            raise OSError(f"cannot reach {urlparse(source.url).hostname}")
        with _socket_timeout(SOCKET_TIMEOUT_S):
            return source.open(os.path.expanduser(root), train, True)
    except Exception as err:  # any failure of the download ends the same way for the user
        raise _unavailable(source, root, local, err) from err


def _load(source: _Source, root: str, train: bool) -> tuple[torch.Tensor, torch.Tensor, Any]:
    dataset = _open_split(source, root, train)
    try:
        images, labels = source.to_tensors(dataset)
    except Exception as err:
        raise UserError(f"{source.name} files under {os.path.join(root, source.folder)} could not be read: {err}") from err
    return images, labels, dataset


def build_torchvision(spec: DataSpec, source: _Source) -> Splits:
    """Official test split as test; val carved (stratified) from the official train split."""
    try:
        _extract_local_archives(source, Path(os.path.expanduser(spec.root)))
    except (OSError, tarfile.TarError, EOFError) as err:
        raise UserError(f"{source.name}: could not extract the archive under {spec.root}: {err}") from err
    train_images, train_labels, train_ds = _load(source, spec.root, train=True)
    test_images, test_labels, _ = _load(source, spec.root, train=False)
    full = ImageTensorDataset(train_images, train_labels)
    train_idx, val_idx = train_val_indices(train_labels, spec)
    size = tuple(train_images.shape[-2:])
    warn_fixed_size(spec, size)
    info = DataInfo(
        name=source.name,
        task="classification",
        classes=source.classes or tuple(str(c) for c in train_ds.classes),
        channels=train_images.shape[1],
        image_size=size,
        mean=source.mean,
        std=source.std,
        hflip_ok=source.hflip_ok,
    )
    test = ImageTensorDataset(test_images, test_labels)
    return Splits(train=full.subset(train_idx), val=full.subset(val_idx), test=test, info=info)


DARK_BACKGROUND = ("mnist", "fashion-mnist")  # strokes on black, like digits: the 0..0.3 eps grid
DARK_BACKGROUND_SCALE = 0.1


def _register(source: _Source) -> None:
    scale = DARK_BACKGROUND_SCALE if source.name in DARK_BACKGROUND else None
    register_dataset(source.name, eps_scale=scale)(lambda spec: build_torchvision(spec, source))


for _source in _SOURCES.values():
    _register(_source)
