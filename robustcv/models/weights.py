"""Reading pretrained weights without ever unpickling arbitrary objects.

Sources: ImageNet weights from torchvision's weight enums (torch hub cache, downloaded with a
timeout when missing) and local ``.safetensors`` / ``.pt`` / ``.pth`` files. ``.pt``/``.pth`` go
through ``torch.load(weights_only=True)`` only, so a malicious pickle is refused, not executed.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import warnings
from collections import OrderedDict
from pathlib import Path
from urllib.request import urlopen

import torch
from torch import nn

from robustcv.errors import UserError

StateDict = dict[str, torch.Tensor]

# Prefixes of our own checkpoints (RobustModel -> net -> backbone -> body) and of DataParallel.
_WRAPPER_PREFIXES = ("module.", "net.", "backbone.", "body.")
_NEVER_BACKBONE = ("head.", "normalize.")
_DOWNLOAD_TIMEOUT_S = 20
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth")


def read_state_dict(path: str | os.PathLike) -> StateDict:
    """Tensors of a local weights file; anything unreadable or unsafe is a ``UserError``."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"weights file not found: {file}")
    suffix = file.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(file), device="cpu")
        except Exception as exc:  # safetensors raises its own error types for corrupt headers
            raise UserError(f"cannot read safetensors weights {file}: {_first_line(exc)}") from None
    if suffix in (".pt", ".pth"):
        return _unwrap(_torch_load(file), file)
    raise UserError(f"weights file {file} must end in .safetensors, .pt or .pth")


def _torch_load(file: Path) -> object:
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for unsafe globals, RuntimeError for corrupt zips
        raise UserError(f"refusing to load {file}: not a plain tensor file readable with "
                        f"torch.load(weights_only=True) ({type(exc).__name__}: {_first_line(exc)})") from None


def _unwrap(obj: object, file: Path) -> StateDict:
    """Accept a bare state dict or the usual ``{"state_dict": ...}`` / ``{"model": ...}`` wrappers."""
    if isinstance(obj, dict):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                return _unwrap(obj[key], file)
    raise UserError(f"{file} holds no state dict (a mapping of names to tensors)")


def imagenet_state_dict(arch: str) -> StateDict:
    """The DEFAULT ImageNet weights of torchvision ``arch``, from the torch hub cache.

    A missing file is downloaded (with a timeout) to where torch hub keeps it; offline, the
    ``UserError`` says which file to put where.
    """
    from torchvision.models import get_model_weights

    try:
        weights = get_model_weights(arch).DEFAULT
    except (ValueError, AttributeError):
        raise UserError(f"torchvision has no pretrained weights for '{arch}'") from None
    url = weights.url
    file = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    if not file.is_file():
        _download(url, file, arch)
    return _unwrap(_torch_load(file), file)


def _download(url: str, file: Path, arch: str) -> None:
    try:
        with urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
            payload = response.read()
    except OSError as exc:  # URLError, timeouts and refused connections are all OSErrors
        raise UserError(f"ImageNet weights for {arch} are not in the torch hub cache and could not be "
                        f"downloaded ({_first_line(exc)}): put {url} at {file}") from None
    _check_hash(payload, file.name, url)
    file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=file.parent, delete=False) as tmp:
        tmp.write(payload)
    os.replace(tmp.name, file)


def _check_hash(payload: bytes, filename: str, url: str) -> None:
    """torch hub's convention: the file name ends in the first hex digits of its sha256."""
    match = re.search(r"-([a-f0-9]*)\.", filename)
    if match and not hashlib.sha256(payload).hexdigest().startswith(match.group(1)):
        raise UserError(f"downloaded {url} does not match the hash in its name; try again")


def load_backbone_state(target: nn.Module, state: StateDict, *, source: str, model: str,
                        ignore: tuple[str, ...] = ()) -> None:
    """Copy ``state`` into ``target`` after stripping wrapper prefixes and dropping head keys.

    ``ignore`` lists prefixes of the original network's classifier (``fc.``, ``classifier.``),
    which our new head replaces. Missing tensors or wrong shapes are a ``UserError`` (a
    half-loaded backbone would silently train from noise); unexpected extra keys only warn.
    """
    cleaned = {}
    for key, value in state.items():
        key = _strip(key)
        if not key.startswith(_NEVER_BACKBONE + ignore):
            cleaned[key] = value
    expected = target.state_dict()
    wrong = [k for k in cleaned if k in expected and cleaned[k].shape != expected[k].shape]
    if wrong:
        k = wrong[0]
        raise UserError(f"{source} does not fit {model}: {len(wrong)} tensors have the wrong shape, "
                        f"e.g. {k}: file {tuple(cleaned[k].shape)} vs model {tuple(expected[k].shape)}")
    missing = [k for k in expected if k not in cleaned and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in cleaned if k not in expected]
    if missing:
        raise UserError(f"{source} does not fit {model}: {len(missing)} of {len(expected)} backbone tensors "
                        f"missing (e.g. {', '.join(missing[:3])}); {len(unexpected)} unexpected"
                        + (f" (e.g. {', '.join(unexpected[:3])})" if unexpected else ""))
    if unexpected:
        warnings.warn(f"{source}: ignored {len(unexpected)} keys that {model} does not have "
                      f"(e.g. {', '.join(unexpected[:3])})", stacklevel=2)
    target.load_state_dict(versioned({k: v for k, v in cleaned.items() if k in expected}, target), strict=False)


def versioned(state: StateDict, module: nn.Module) -> StateDict:
    """``state`` carrying ``module``'s own per-module versions (``_metadata``), as ``torch.save``
    would have kept them: safetensors files and re-keyed dicts lose them, and some torchvision
    modules (MNASNet) refuse a state without its version."""
    out = OrderedDict(state)
    out._metadata = getattr(module.state_dict(), "_metadata", None)  # type: ignore[attr-defined]
    return out


def _strip(key: str) -> str:
    while key.startswith(_WRAPPER_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
