"""Output directories robustcv owns: claimed under a lock, built in staging, swapped in whole.

Every run, report, checkpoint and denoiser directory robustcv writes carries a manifest, ``.robustcv.json``
(its kind and the files written). ``--force`` replaces only such a directory (or one from before
manifests that is clearly robustcv's); it never touches the working directory, its parents, the
home or models folder, or a folder holding anyone else's files. A new output is built in a hidden
staging folder beside the target and renamed into place only when complete, so an interrupted or
failed run keeps the old output. A lock file beside the target (``O_CREAT | O_EXCL``) keeps two runs
from writing the same place; a lock whose process is gone from this host is taken over.

Usage::

    with claim_output(Path("runs/x"), OutputKind.RUN, force=True) as output:
        ...  # expensive work: the target is known to be writable and ours to replace
        with output.staging() as staging:
            write_files(staging)  # swapped into runs/x when this block ends without an error
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Iterator, Mapping

from safetensors import SafetensorError

from robustcv.errors import UserError
from robustcv.results import current_umask, write_json_atomic

MANIFEST = ".robustcv.json"
MANIFEST_SCHEMA = "robustcv.output/1"
NAME_MAX = 255
_SHORT_STEM = 200  # longer names get hashed helper names, so ".<name>.staging-…" still fits in NAME_MAX


class OutputKind(str, Enum):
    """What an output directory holds."""

    RUN = "run"
    REPORT = "report"
    CHECKPOINT = "checkpoint"
    DENOISER = "denoiser"


@dataclass(frozen=True)
class _Legacy:
    """How an output from before manifests looks: a key file of ours and nothing but known names."""

    keys: tuple[str, ...]
    files: frozenset[str]
    folders: frozenset[str] = frozenset()
    png_anywhere: bool = False

    def matches(self, directory: Path) -> bool:
        key = next((directory / k for k in self.keys if (directory / k).is_file()), None)
        return key is not None and _is_ours(key) and all(self._known(e) for e in directory.iterdir())

    def _known(self, entry: Path) -> bool:
        if entry.is_symlink():
            return False
        if entry.is_dir():
            return entry.name in self.folders and all(p.suffix == ".png" and p.is_file() for p in entry.iterdir())
        return entry.name in self.files or (self.png_anywhere and entry.suffix == ".png")


_LEGACY = {
    OutputKind.RUN: _Legacy(("results.json",), frozenset({"results.json", "config.json"}), frozenset({"examples"})),
    OutputKind.CHECKPOINT: _Legacy(("model.json",), frozenset({"model.json", "model.safetensors",
                                                               "learning_curves.png", "predictions.png"})),
    OutputKind.REPORT: _Legacy(("report.html", "report.md"), frozenset({"report.html", "report.md"}),
                               frozenset({"gallery"}), png_anywhere=True),
    OutputKind.DENOISER: _Legacy(("denoiser.json",), frozenset({"denoiser.json", "denoiser.safetensors"})),
}
_SCHEMAS = {"results.json": "robustcv.results/1", "model.json": "robustcv.model/1"}
_FORMATS = {"denoiser.json": "robustcv-denoiser/1"}  # older files name their layout in "format"


def _is_ours(key: Path) -> bool:
    """Whether a legacy key file is robustcv's: the right JSON schema, or our report's title."""
    try:
        if key.name in _SCHEMAS:
            return json.loads(key.read_text(encoding="utf-8")).get("schema") == _SCHEMAS[key.name]
        if key.name in _FORMATS:
            return json.loads(key.read_text(encoding="utf-8")).get("format") == _FORMATS[key.name]
        with key.open("rb") as handle:
            return b"Robustness report" in handle.read(4096)
    except (OSError, ValueError, AttributeError):
        return False


# ---------------------------------------------------------------------------------------------
# checks: each returns nothing or raises UserError with one line


def check_path(target: Path) -> None:
    """Refuse a path no folder can be made at: a name over 255 bytes, a file in the way, a
    dangling symlink (the target itself or any folder above it)."""
    check_name_lengths(target)
    for path in [*reversed(target.parents), target]:
        if path.is_symlink() and not path.exists():
            raise UserError(f"{path} is a dangling symlink (it points to {os.readlink(path)}, which does not exist)")
        if path.exists() and not path.is_dir():
            where = "is a file, not a folder" if path == target else f"is a file, so {target} cannot be made"
            raise UserError(f"{path} {where}")


def check_name_lengths(path: Path) -> None:
    """Refuse a path with a name over 255 bytes (the limit of common file systems)."""
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > NAME_MAX:
            raise UserError(f"the name {part[:40]}… is {size} bytes long; file systems allow at most {NAME_MAX}")


def check_protected(target: Path, kind: OutputKind, protect: Mapping[str, Path] | None = None) -> None:
    """Refuse the working directory, its parents, the home folder, and each ``protect`` folder
    (``{"the models folder": path}``) or a folder holding it: no robustcv output replaces those."""
    resolved, cwd = target.resolve(), Path.cwd().resolve()
    folders = {"your home folder": Path.home(), **(protect or {})}
    reason = None
    if resolved == cwd or resolved in cwd.parents:
        reason = "the current working directory" if resolved == cwd else "a parent of the current working directory"
    for label, folder in folders.items():
        folder = Path(folder).resolve()
        if reason is None and (resolved == folder or resolved in folder.parents):
            reason = label if resolved == folder else f"a folder holding {label} ({folder})"
    if reason:
        raise UserError(f"refusing to make {target} a robustcv {kind.value} output: it is {reason}")


def check_replaceable(target: Path, kind: OutputKind, *, force: bool, option: str = "--out") -> None:
    """Refuse an existing non-empty ``target`` unless it is a robustcv ``kind`` output holding
    nothing but the files its manifest lists, and ``force``."""
    if not target.is_dir() or not any(target.iterdir()):
        return
    found = output_kind(target)
    if found is None:
        names = sorted(e.name for e in target.iterdir())
        raise UserError(_foreign_message(target, names, option, f"no {MANIFEST}"))
    if found != kind:
        raise UserError(f"{target} is a robustcv {found.value}, not a {kind.value}; choose another {option}")
    listed = read_manifest(target)
    extra = [] if listed is None else foreign_entries(target, listed.get("files"))
    if extra:
        raise UserError(_foreign_message(target, extra, option, f"not in its {MANIFEST}"))
    if not force:
        raise UserError(f"{kind.value} directory {target} already exists (use --force to replace it, or {option})")


def _foreign_message(target: Path, names: list[str], option: str, why: str) -> str:
    shown = ", ".join(names[:3]) + (", …" if len(names) > 3 else "")
    return (f"{target} holds files robustcv did not write ({shown}; {len(names)} in all, {why}), so --force will "
            f"not replace it; move them out or choose another {option}")


def foreign_entries(directory: Path, files: object) -> list[str]:
    """What ``directory`` holds beyond the manifest's ``files`` (relative POSIX paths): files and
    symlinks by path, a folder holding none of the listed files as ``name/``; sorted."""
    listed = {f for f in files if isinstance(f, str)} if isinstance(files, list) else set()
    folders = {parent for name in listed for parent in _parents(name)}
    found: list[str] = []

    def walk(folder: Path, prefix: str) -> None:
        for entry in sorted(folder.iterdir()):
            name = prefix + entry.name
            if entry.is_dir() and not entry.is_symlink() and name in folders:
                walk(entry, name + "/")
            elif entry.is_dir() and not entry.is_symlink():
                found.append(name + "/")
            elif name != MANIFEST and (entry.is_symlink() or not entry.is_file() or name not in listed):
                found.append(name)

    walk(directory, "")
    return found


def _parents(name: str) -> list[str]:
    """``"a/b/c.png"`` -> ``["a", "a/b"]``."""
    parts = name.split("/")[:-1]
    return ["/".join(parts[:i + 1]) for i in range(len(parts))]


def read_manifest(directory: Path) -> dict | None:
    """The parsed ``.robustcv.json`` of ``directory``, or None when absent or not ours."""
    with contextlib.suppress(OSError, ValueError):
        data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.get("schema") == MANIFEST_SCHEMA:
            return data
    return None


def output_kind(directory: Path) -> OutputKind | None:
    """The kind of robustcv output ``directory`` is: from its manifest, else by its legacy layout."""
    data = read_manifest(directory)
    with contextlib.suppress(KeyError, ValueError, TypeError):
        if data is not None:
            return OutputKind(data["kind"])
    return next((kind for kind, legacy in _LEGACY.items() if legacy.matches(directory)), None)


# ---------------------------------------------------------------------------------------------
# the lock


@dataclass
class _Lock:
    """A lock file beside an output; ``owner`` is what it says about the process holding it."""

    path: Path
    owner: dict = field(default_factory=dict)

    def acquire(self) -> None:
        """Create the lock atomically; take over a stale one; ``UserError`` naming a live holder."""
        for _ in range(3):
            if self._create():
                return
            holder = self._read()
            if not _is_stale(holder, self.path):
                raise UserError(_busy_message(self.path, holder))
            self._remove_stale()
        raise UserError(_busy_message(self.path, self._read()))

    def release(self) -> None:
        """Delete the lock file if it is still this process's."""
        if self._read() == self.owner:
            with contextlib.suppress(OSError):
                self.path.unlink()

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            self.owner = {"pid": os.getpid(), "host": socket.gethostname(),
                          "started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
            os.write(fd, json.dumps(self.owner).encode("utf-8"))
        except BaseException:
            os.close(fd)
            self.path.unlink()
            raise
        os.close(fd)
        return True

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _remove_stale(self) -> None:
        """Move the stale lock aside and delete it; a fresh lock another process made meanwhile is put back."""
        aside = self.path.with_name(f"{self.path.name}.stale-{os.getpid()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        if _is_stale(_Lock(aside)._read(), aside):
            aside.unlink()
            return
        with contextlib.suppress(FileExistsError):
            os.link(aside, self.path)
        aside.unlink()


def _is_stale(holder: dict, path: Path) -> bool:
    """A lock is stale when its pid is gone from this host, or when it is unreadable and old."""
    if not holder:
        with contextlib.suppress(FileNotFoundError):
            return time.time() - path.stat().st_mtime > 10
        return True
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int) or os.name == "nt":
        return False  # another machine's process, or Windows (where os.kill(pid, 0) would end it)
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _busy_message(path: Path, holder: dict) -> str:
    who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started', '?')}"
    return f"another robustcv run is writing here ({who}); wait for it to end (or, if it is gone, delete {path})"


# ---------------------------------------------------------------------------------------------
# the claimed output


@dataclass
class Output:
    """A target this process holds the lock of; ``staging()`` builds its new content."""

    target: Path
    kind: OutputKind
    force: bool
    option: str = "--out"
    enabled: bool = True

    @property
    def stem(self) -> str:
        """The hidden prefix of the lock, staging and retired names beside the target."""
        name = self.target.name
        short = name if len(os.fsencode(name)) <= _SHORT_STEM else hashlib.sha1(os.fsencode(name)).hexdigest()
        return f".{short}"

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh hidden folder beside the target, swapped in (with a manifest) when the block
        ends; deleted, leaving the old output as it was, when the block raises. A full disk or a
        read-only folder while writing in it is one line naming the file at its final place."""
        if not self.enabled:  # another rank of a distributed job: rank 0 writes
            yield self.target
            return
        with one_line_faults(where=self.target.parent):
            staging = Path(tempfile.mkdtemp(dir=self.target.parent, prefix=f"{self.stem}.staging-"))
        try:
            staging.chmod(0o777 & ~current_umask())  # mkdtemp makes it 0o700; give the usual permissions
            yield staging
            write_manifest(staging, self.kind)
            check_replaceable(self.target, self.kind, force=True, option=self.option)  # still ours?
            self._swap(staging)
        except (OSError, SafetensorError) as exc:
            message = self._write_fault(exc, staging)
            if message is None:
                raise
            raise UserError(message) from None
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def _write_fault(self, exc: BaseException, staging: Path) -> str | None:
        """One line for a write fault (full disk, read-only, no permission) in ``staging`` or the
        swap, naming the file where it was to go; None for any other error."""
        fault = exc if isinstance(exc, OSError) else safetensors_os_error(exc)
        if fault is None or fault.errno not in WRITE_FAULTS:
            return None
        where = self.target
        if fault.filename:
            path = Path(os.path.abspath(os.fsdecode(fault.filename)))
            if path != staging and staging not in path.parents:
                return None  # not a file of this output (a cache, a dataset): the caller's to describe
            where = self.target / path.relative_to(staging)
        return f"cannot write {where}: {_FAULTS[fault.errno]} ({self.target} was left as it was)"

    def _swap(self, staging: Path) -> None:
        """Old aside, new in, old deleted; the old one comes back if the new cannot go in."""
        if not self.target.exists():
            os.rename(staging, self.target)
            return
        retired = self.target.with_name(f"{self.stem}.old-{os.getpid()}")
        shutil.rmtree(retired, ignore_errors=True)
        os.rename(self.target, retired)
        try:
            os.rename(staging, self.target)
        except BaseException:
            os.rename(retired, self.target)
            raise
        shutil.rmtree(retired, ignore_errors=True)

    def recover(self) -> None:
        """Clear what a killed earlier run left beside the target (under the lock, nobody else's):
        staging folders go; a retired output comes back when the target is missing."""
        for entry in self.target.parent.iterdir():
            if entry.name.startswith(f"{self.stem}.staging-"):
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.name.startswith(f"{self.stem}.old-"):
                if not self.target.exists():
                    os.rename(entry, self.target)
                else:
                    shutil.rmtree(entry, ignore_errors=True)


@contextlib.contextmanager
def claim_output(target: str | Path, kind: OutputKind, *, force: bool, option: str = "--out",
                 protect: Mapping[str, Path] | None = None, enabled: bool = True) -> Iterator[Output]:
    """Check ``target`` (path, protection, ownership), make its parent and lock it; cheap, so call
    it before expensive work. The lock (and any parent folder made here, if still empty) goes on exit.

    Args:
        target: the output directory. A live symlink stands for the folder it points to.
        kind: what will be written there; an existing output of another kind is refused.
        force: replace an existing robustcv output of this kind (otherwise refuse it).
        option: the flag that names this path, quoted in messages.
        protect: folders never to write into or replace, by description (e.g. the models folder).
        enabled: False on ranks that do not write: no checks, no lock, staging yields the target.

    Raises:
        UserError: one line saying why the target cannot be used.
    """
    if not enabled:
        yield Output(Path(target), kind, force, option, enabled)
        return
    check_name_lengths(Path(target))
    with one_line_faults():
        output = Output(_absolute(Path(target)), kind, force, option, enabled)
        check_path(output.target)
        check_protected(output.target, kind, protect)
    made = _make_parents(output.target.parent)
    try:
        with _locked(output):
            yield output
    finally:
        _remove_if_empty(made)


@contextlib.contextmanager
def _locked(output: Output) -> Iterator[None]:
    """Hold the output's lock; clear leftovers and check the target again once it is held."""
    lock = _Lock(output.target.with_name(f"{output.stem}.lock"))
    with one_line_faults(where=output.target.parent):  # the lock is the probe: can we write there at all?
        lock.acquire()
    try:
        with one_line_faults():
            output.recover()
            check_path(output.target)
            check_replaceable(output.target, output.kind, force=output.force, option=output.option)
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def one_line_faults(where: Path | None = None) -> Iterator[None]:
    """Turn a file-system fault inside the block into a one-line ``UserError`` (about ``where``
    rather than the file that failed, when given)."""
    try:
        yield
    except OSError as exc:
        message = describe_os_error(exc)
        if message is None:
            raise
        if where is not None:
            message = f"cannot write in {where}: {_FAULTS[exc.errno]}"
        raise UserError(message) from None


def _absolute(path: Path) -> Path:
    absolute = Path(os.path.abspath(path))
    return absolute.resolve() if absolute.is_symlink() and absolute.exists() else absolute


def _make_parents(folder: Path) -> list[Path]:
    """``mkdir -p`` that returns the folders it made, deepest last; one line on failure."""
    missing = [p for p in [*reversed(folder.parents), folder] if not p.exists()]
    made: list[Path] = []
    try:
        with one_line_faults():
            for path in missing:
                with contextlib.suppress(FileExistsError):
                    path.mkdir()
                    made.append(path)
    except BaseException:
        _remove_if_empty(made)
        raise
    return made


def _remove_if_empty(folders: list[Path]) -> None:
    for path in reversed(folders):
        with contextlib.suppress(OSError):
            path.rmdir()


def write_manifest(directory: Path, kind: OutputKind) -> None:
    """Write ``.robustcv.json``: the kind and every file in ``directory`` (relative, sorted)."""
    from robustcv import __version__

    files = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())
    write_json_atomic(directory / MANIFEST, {
        "schema": MANIFEST_SCHEMA, "kind": kind.value, "robustcv": __version__,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "files": files,
    })


# ---------------------------------------------------------------------------------------------
# file-system faults as one line

_FAULTS = {
    errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
    errno.EROFS: "the file system is read-only", errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded", errno.ENAMETOOLONG: "a name or the path is too long",
    errno.ENOTDIR: "a file is in the way of a folder", errno.EISDIR: "a folder is in the way of a file",
    errno.ELOOP: "too many levels of symlinks", errno.ENOENT: "no such file or folder (a dangling symlink?)",
    errno.EEXIST: "something is already there",
}


WRITE_FAULTS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def safetensors_os_error(exc: BaseException, filename: str | Path | None = None) -> OSError | None:
    """The ``OSError`` inside a safetensors error (``IoError(Os { code: 28, ... })``: it raises
    ``SafetensorError``, not ``OSError``, on a full disk), or None when it holds none."""
    found = re.search(r"\bcode: (\d+)", str(exc))
    if found is None:
        return None
    code = int(found.group(1))
    return OSError(code, os.strerror(code), None if filename is None else str(filename))


def describe_os_error(exc: OSError) -> str | None:
    """One line for a file-system fault (no permission, full disk, a file in the way, ...), or
    None for other errors, which stay tracebacks (they are bugs, not the user's to fix)."""
    reason = _FAULTS.get(exc.errno)
    if reason is None or (exc.errno == errno.ENOENT and not exc.filename):
        return None
    if not exc.filename:
        return f"file system error: {reason}"
    where = f"{exc.filename} -> {exc.filename2}" if exc.filename2 else f"{exc.filename}"
    return f"{where}: {reason}"
