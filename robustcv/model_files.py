"""Exported model files: a TorchScript archive (``torch.jit.save``) or a ``torch.export`` program
(``.pt2``, ``torch.export.save``), loaded without running code hidden in the file.

Neither torch loader is safe on its own (torch 2.14, read from its source):

- ``torch.export.load`` unpickles the sample inputs with ``weights_only=True`` and, when that
  fails, again with ``weights_only=False`` (arbitrary code); it unpickles pickled weights,
  constants and custom objects with ``weights_only=False``/``pickle.loads``; it runs symbolic
  shape strings through ``sympy.sympify`` (``eval``); it loads AOTInductor native libraries; and
  the program carries ``guards_code``, Python source (unused by this version's loader, refused
  all the same).
- ``torch.jit.load`` unpickles with TorchScript's C++ unpickler, which runs no Python ``__reduce__``
  (an unknown global is an error), but it runs the archive's TorchScript ``__setstate__`` while
  loading, and TorchScript code may call ``aten::save`` / ``aten::from_file`` (file access).

So the file is read once into memory and checked first; torch then loads those same bytes:
every pickle inside may name only tensor-rebuilding globals (checked opcode by opcode, nothing
unpickled); a ``.pt2`` may hold no pickled weights, constants or objects, no native code, no
guard code, and only arithmetic in its shape expressions; a TorchScript archive may define no
``__setstate__``. Every member's CRC is checked first (altered tensor data is refused), and no
member name may appear twice (torch and Python's zipfile could read different copies). After
loading, every graph the model can run must pass :mod:`robustcv.model_graphs`' allowlist.
Anything else is a one-line ``UserError``. A plain ``torch.save`` pickle of a whole model is
refused outright.
"""
from __future__ import annotations

import io
import json
import pickletools
import re
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn

from robustcv.errors import UserError
from robustcv.model_graphs import check_graph_modules, check_script_module

MAX_BYTES = 4 << 30  # a model file larger than this is not read into memory
ZIP_MAGIC = b"PK\x03\x04"
SCRIPT_FAILURE = "The following operation failed in the TorchScript interpreter"
# Globals a tensor pickle needs (torch.save of tensors, TorchScript's data and debug pickles).
_TENSOR_GLOBALS = re.compile(r"torch\._utils _rebuild_tensor_v2|torch\._utils _rebuild_parameter|"
                             r"collections OrderedDict|torch [A-Za-z]*Storage|torch\.jit\._pickle [a-z_]+")
# TorchScript classes, but not C++ custom classes (``__torch__.torch.classes``: their native
# ``__setstate__`` runs while loading, on the file's data).
_SCRIPT_GLOBALS = re.compile(r"__torch__(?!\.torch\.classes\.)(\.[A-Za-z_]\w*)* [A-Za-z_]\w*")
_UNREAD_OPCODES = {"STACK_GLOBAL", "INST", "OBJ", "EXT1", "EXT2", "EXT4"}  # globals we could not check
_EXPORT_DIRS = ("models/", "data/weights/", "data/constants/", "data/sample_inputs/", "extra/")
_EXPORT_FILES = ("archive_format", "archive_version", ".data/version", ".data/serialization_id", "byteorder")
_TREESPEC_TYPES = {None, "builtins.tuple", "builtins.list", "builtins.dict", "collections.OrderedDict"}
_PLAIN_TEXT = re.compile(r"[A-Za-z0-9_.:+\-]*")
_SYMPY_NAMES = {"Symbol", "positive", "integer", "real", "nonnegative", "True", "False", "Max", "Min", "FloorDiv",
                "CeilDiv", "Mod", "PythonMod", "CleanDiv", "IntTrueDiv", "FloatTrueDiv", "ToFloat", "TruncToInt",
                "Eq", "Ne", "Ge", "Gt", "Le", "Lt", "And", "Or", "Not", "oo", "int_oo", "Abs"}


def load_model_file(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Load a TorchScript archive or a ``torch.export`` program (``.pt2``) safely.

    Returns:
        The model in eval mode on ``device`` (``[0, 1]`` images in, logits out, as exported).

    Raises:
        UserError: missing or unreadable file, a pickled model, or content that would run code
            while loading (one line saying which).
    """
    path = Path(path)
    data = _read(path)
    try:
        kind = file_kind(path, data)
        archive = zipfile.ZipFile(io.BytesIO(data))
        check_archive(path, archive)
        model = _load_exported(path, data, archive) if kind == "export" else _load_torchscript(path, data, archive)
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:  # a truncated or damaged archive
        raise UserError(f"{path} is a damaged zip archive: {_first_line(exc)}") from None
    return model.to(device).eval()


def check_archive(path: Path, archive: zipfile.ZipFile) -> None:
    """Every member read back against its CRC, and no member name twice."""
    names = archive.namelist()
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise UserError(f"{path} holds the member {twice} twice; refused (torch and robustcv could read different "
                        "copies)")
    bad = archive.testzip()
    if bad is not None:
        raise UserError(f"{path}: the member {bad} fails its CRC check (the file was altered or damaged); refused")


def _read(path: Path) -> bytes:
    if not path.is_file():
        raise UserError(f"no model file at {path}")
    if path.stat().st_size > MAX_BYTES:
        raise UserError(f"{path} is larger than {MAX_BYTES >> 30} GiB; not a model file robustcv reads")
    return path.read_bytes()


def file_kind(path: Path, data: bytes) -> str:
    """``"torchscript"`` or ``"export"``; ``UserError`` for a pickle or anything else."""
    if not data:
        raise UserError(f"{path} is empty (0 bytes), not a model file")
    if not zipfile.is_zipfile(io.BytesIO(data)):
        if data.startswith(ZIP_MAGIC):
            raise UserError(f"{path} is a truncated or damaged zip archive (its table of contents is missing); "
                            "save or copy the model file again")
        if data[:1] == b"\x80":
            raise UserError(f"{path} is a pickle (torch.save of a model), which robustcv never unpickles; "
                            "export it (torch.export.save to .pt2, or torch.jit.save) or save weights as safetensors")
        raise UserError(f"{path} is not a TorchScript archive or a torch.export .pt2 file")
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    if any(_inner(n) == "archive_format" for n in names):
        return "export"
    if any(_inner(n).startswith("code/") for n in names) and any(_inner(n) == "constants.pkl" for n in names):
        return "torchscript"
    if any(_inner(n) == "data.pkl" for n in names):
        raise UserError(f"{path} is a torch.save pickle of a model, which robustcv never unpickles; "
                        "export it (torch.export.save to .pt2, or torch.jit.save) or save weights as safetensors")
    raise UserError(f"{path} is a zip file but not a TorchScript archive or a torch.export .pt2 file")


def _inner(name: str) -> str:
    """A member's path below the archive's root folder (``root/code/x.py`` -> ``code/x.py``)."""
    return name.split("/", 1)[1] if "/" in name else name


def check_pickle(data: bytes, allowed: Callable[[str], bool], where: str) -> None:
    """Refuse a pickle whose globals are not all ``allowed``: read opcode by opcode, never run."""
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name in _UNREAD_OPCODES:
                raise UserError(f"{where} uses the pickle opcode {opcode.name}, which robustcv refuses")
            if opcode.name == "GLOBAL" and not allowed(str(arg)):
                raise UserError(f"{where} holds a pickle that would call {str(arg).replace(' ', '.')}; refused "
                                "(only tensor data is accepted)")
    except (ValueError, EOFError) as exc:
        raise UserError(f"{where} holds a corrupt pickle: {exc}") from None


def _tensor_pickle(name: str) -> bool:
    return bool(_TENSOR_GLOBALS.fullmatch(name))


# --- torch.export programs ---------------------------------------------------------------------


def _load_exported(path: Path, data: bytes, archive: zipfile.ZipFile) -> nn.Module:
    _check_export_archive(path, archive)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.export.load(io.BytesIO(data))
        except Exception as exc:  # torch's own failure on a file that passed the checks
            raise UserError(f"torch.export.load cannot read {path}: {_first_line(exc)}") from None
    check_graph_modules(path, program.graph_module)  # program.module() adds torch's own input guards
    return FileModel(program.module(), fixed_mode=True, input_shape=_input_shape(program))


def _input_shape(program: Any) -> tuple[int | None, ...] | None:
    """The shape the program's one image input was exported for (None where a dimension is dynamic)."""
    names = set(program.graph_signature.user_inputs)
    shapes = [node.meta.get("val") for node in program.graph.nodes if node.op == "placeholder" and node.name in names]
    if len(shapes) != 1 or not isinstance(shapes[0], torch.Tensor):
        return None
    return tuple(d if isinstance(d, int) else None for d in shapes[0].shape)


def _check_export_archive(path: Path, archive: zipfile.ZipFile) -> None:
    for name in archive.namelist():
        inner = _inner(name)
        if not (inner in _EXPORT_FILES or inner.startswith(_EXPORT_DIRS)):
            raise UserError(f"{path} holds {inner}, which robustcv does not load from a .pt2 "
                            "(native AOTInductor code and unknown files are refused)")
        if inner.startswith(("data/weights/", "data/constants/")) and inner.endswith(".pt"):
            raise UserError(f"{path} stores {inner} as a pickle (an old .pt2 layout); "
                            "re-save it with torch.export.save")
        if inner.startswith("data/sample_inputs/"):
            _check_torch_save(archive.read(name), f"{path} ({inner})")
        if inner.endswith("_config.json"):
            _check_payload_config(path, inner, _json(archive, name, path))
        if inner.startswith("models/"):
            _check_program_text(path, _json(archive, name, path))


def _check_torch_save(data: bytes, where: str) -> None:
    """A ``torch.save`` zip (or legacy pickle) holding tensors only."""
    if not zipfile.is_zipfile(io.BytesIO(data)):
        check_pickle(data, _tensor_pickle, where)
        return
    inner = zipfile.ZipFile(io.BytesIO(data))
    for name in inner.namelist():
        if name.endswith(".pkl"):
            check_pickle(inner.read(name), _tensor_pickle, where)


def _check_payload_config(path: Path, inner: str, config: Any) -> None:
    entries = config.get("config", {}) if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise UserError(f"{path}: {inner} is not a payload config")
    for fqn, meta in entries.items():
        name = str(meta.get("path_name", "")) if isinstance(meta, dict) else ""
        if not isinstance(meta, dict) or meta.get("use_pickle") or not name.startswith(("weight_", "tensor_")):
            raise UserError(f"{path} stores {fqn!r} as a pickled object; robustcv loads raw tensors only "
                            "(export the model without tensor subclasses or custom objects)")


def _check_program_text(path: Path, program: Any) -> None:
    """No text torch would evaluate: guard code, non-arithmetic shape expressions, odd names."""
    if not isinstance(program, dict):
        raise UserError(f"{path}: the program is not a JSON object")
    if program.get("guards_code"):
        raise UserError(f"{path} carries guard code (Python source); refused")
    for key, text in _strings(program):
        if not _safe_text(key, text):
            raise UserError(f"{path} holds text torch would evaluate as code ({key}: {text[:60]!r}); refused")


def _strings(node: Any, key: str = "") -> Iterable[tuple[str, str]]:
    """Every (key, string) of a JSON document, keys included, except node metadata (stack traces,
    module paths: text torch keeps as text)."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield "key", str(k)
            if k != "metadata":
                yield from _strings(v, str(k))
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v, key)
    elif isinstance(node, str):
        yield key, node


def _safe_text(key: str, text: str) -> bool:
    if _PLAIN_TEXT.fullmatch(text):
        return True
    if key == "expr_str" or key == "key":
        return _arithmetic(text)
    return _treespec(text)


def _arithmetic(text: str) -> bool:
    """A sympy expression of symbols and integers only (``sympify`` evals it)."""
    if not re.fullmatch(r"[A-Za-z0-9_ ,()+\-*/%=<>']*", text) or "__" in text:
        return False
    bare = re.sub(r"'[A-Za-z]\w*'", "", text)  # quoted symbol names: Symbol('s0', ...)
    if "'" in bare:
        return False
    return all(name in _SYMPY_NAMES or re.fullmatch(r"[a-z]+\d+", name)
               for name in re.findall(r"[A-Za-z_]\w*", bare))


def _treespec(text: str) -> bool:
    """A pytree spec of tuples, lists and dicts (other types import modules when loaded)."""
    try:
        spec = json.loads(text)
    except ValueError:
        return False
    if "__enum__" in text or "default_factory" in text:
        return False
    return all(v in _TREESPEC_TYPES for k, v in _items(spec) if k == "type")


def _items(node: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield k, v
            yield from _items(v)
    elif isinstance(node, list):
        for v in node:
            yield from _items(v)


def _json(archive: zipfile.ZipFile, name: str, path: Path) -> Any:
    try:
        return json.loads(archive.read(name))
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"{path}: {_inner(name)} is not valid JSON") from None


class FileModel(nn.Module):
    """A loaded model file as a plain ``nn.Module`` (``requires_grad_`` and friends work).

    An exported program's mode was fixed when it was exported: there ``eval()``/``train()`` only
    set the flag; a TorchScript module switches its own. ``input_shape`` is the image batch shape
    an exported program was made for (None in a dynamic dimension), None when the file does not say.
    """

    def __init__(self, module: nn.Module, fixed_mode: bool,
                 input_shape: tuple[int | None, ...] | None = None) -> None:
        super().__init__()
        self.module = module
        self.fixed_mode = fixed_mode
        self.input_shape = input_shape

    def train(self, mode: bool = True) -> "FileModel":
        if self.fixed_mode:
            self.training = mode
            return self
        return super().train(mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return self.module(x)
        except RuntimeError as exc:  # TorchScript's message opens with its own traceback: keep the cause
            if not str(exc).startswith(SCRIPT_FAILURE):
                raise
            raise RuntimeError(_last_line(exc)) from None


# --- TorchScript archives ----------------------------------------------------------------------


def _load_torchscript(path: Path, data: bytes, archive: zipfile.ZipFile) -> nn.Module:
    for info in archive.infolist():
        inner = _inner(info.filename)
        if inner.endswith((".pkl", ".debug_pkl")):
            allowed = (lambda g: _tensor_pickle(g) or bool(_SCRIPT_GLOBALS.fullmatch(g)))
            check_pickle(archive.read(info), allowed, f"{path} ({inner})")
        elif _may_hold_code(inner) and b"__setstate__" in archive.read(info):
            raise UserError(f"{path} defines __setstate__ ({inner}), code torch.jit.load would run while loading; "
                            "refused")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
        try:
            module = torch.jit.load(io.BytesIO(data), map_location="cpu")
        except Exception as exc:
            raise UserError(f"torch.jit.load cannot read {path}: {_first_line(exc)}") from None
    check_script_module(path, module)
    return FileModel(module, fixed_mode=False)


def _may_hold_code(inner: str) -> bool:
    """Any member but tensor storage (``data/N``, ``constants/N``) may hold source torch compiles:
    checking them all leaves no naming trick (another folder, another suffix) unchecked."""
    folder, _, leaf = inner.rpartition("/")
    return not (folder in ("data", "constants") and leaf.isdigit())


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
