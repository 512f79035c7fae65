"""The TorchScript sandbox: crafted archives whose scripted code writes a file (``torch.save``
compiles to ``aten::save``) through every path TorchScript offers besides ``forward``'s own graph.

Each case is shown LIVE first (``torch.jit.load`` and a call write the file), then refused by
``robustcv attack --model-file`` with one line and exit 2, the file never written and no run folder.
A legitimate model with submodules, a ModuleList and a scripted helper still loads, logits unchanged.
Then the archive itself: altered tensor data (CRC), a duplicated member, C++ custom classes, and
the messages for a truncated or empty file and for images of the wrong shape.
"""
# no `from __future__ import annotations`: TorchScript reads the interface annotations as types

import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable, NamedTuple, Tuple

import pytest
import torch
import torchvision
from torch import nn

from fault_helpers import assert_one_line, run_cli
from robustcv.errors import UserError
from robustcv.model_files import load_model_file
from robustcv.model_graphs import allowed_kind, check_graph_modules

SMALL = ["--n", "30", "--eps", "0,0.05", "--attack", "fgsm", "--natural", "none", "--no-report", "--quiet"]
X = torch.rand(2, 1, 8, 8)  # digits: one channel, 8x8, 10 classes


class Saver(nn.Module):
    """The payload: writes its input to ``target`` (``aten::save``)."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.save(x, self.target)
        return x


@torch.jit.interface
class Step(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pass


class ThroughInterface(nn.Module):
    """``self.step`` is typed by an interface: its call stays a ``prim::CallMethod`` after inlining."""

    step: Step

    def __init__(self, target: str) -> None:
        super().__init__()
        self.step = Saver(target)
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.step.forward(x).flatten(1))


class Head(nn.Module):
    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.flatten(1))


def save_after(module: Head, inputs: Tuple[torch.Tensor], output: torch.Tensor) -> None:
    torch.save(output, module.target)


def save_before(module: Head, inputs: Tuple[torch.Tensor]) -> None:
    torch.save(inputs[0], module.target)


def with_hook(target: str) -> nn.Module:
    model = Head(target)
    model.register_forward_hook(save_after)
    return model


def with_pre_hook(target: str) -> nn.Module:
    model = Head(target)
    model.register_forward_pre_hook(save_before)
    return model


class HookedChild(nn.Module):
    """The hook sits on a submodule: the parent's graph calls the child, hook and all."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.child = with_hook(target)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.child(x)


class InForward(Head):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.save(x, self.target)
        return self.head(x.flatten(1))


class ExportedMethod(Head):
    """``forward`` is clean; the payload waits in a method the file exports (callable after loading)."""

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        torch.save(x, self.target)
        return x.flatten(1)


class InModuleList(nn.Module):
    def __init__(self, target: str) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Identity(), Saver(target)])
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.head(x.flatten(1))


def forked_save(x: torch.Tensor, target: str) -> torch.Tensor:
    torch.save(x, target)
    return x


class ThroughFork(Head):
    """``torch.jit.fork``: the forked function is a subgraph attribute, not a block."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        future = torch.jit.fork(forked_save, x, self.target)
        return self.head(torch.jit.wait(future).flatten(1))


@torch.jit.script
class Writer:
    """A TorchScript class (not a module): its methods are called through ``prim::CallMethod``."""

    def __init__(self, target: str) -> None:
        self.target = target

    def write(self, x: torch.Tensor) -> torch.Tensor:
        torch.save(x, self.target)
        return x

    def __enter__(self) -> None:
        torch.save(torch.zeros(1), self.target)

    def __exit__(self, kind: Any, value: Any, trace: Any) -> None:
        pass


class ThroughScriptClass(Head):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(Writer(self.target).write(x).flatten(1))


class ThroughWith(Head):
    """``with``: ``prim::Enter`` calls ``__enter__`` at run time (not inlined)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with Writer(self.target):
            y = self.head(x.flatten(1))
        return y


class Payload(NamedTuple):
    name: str
    build: Callable[[str], nn.Module]
    run: Callable[[torch.jit.ScriptModule], object]  # how the loaded payload is set off


def call(module: torch.jit.ScriptModule) -> object:
    return module(X)


PAYLOADS = [
    Payload("interface call", ThroughInterface, call),
    Payload("forward hook", with_hook, call),
    Payload("forward pre-hook", with_pre_hook, call),
    Payload("submodule's hook", HookedChild, call),
    Payload("forward itself", InForward, call),
    Payload("exported method", ExportedMethod, lambda m: m.features(X)),
    Payload("module list", InModuleList, call),
    Payload("fork", ThroughFork, call),
    Payload("script class method", ThroughScriptClass, call),
    Payload("with block", ThroughWith, call),
]


def save_script(model: nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(model), str(path))
    return path


def attack(capsys, tmp_path: Path, model_file: Path) -> tuple[int, str]:
    code, _, err = run_cli(capsys, "attack", "--model-file", model_file, "--out", tmp_path / "run", *SMALL)
    return code, err


@pytest.mark.parametrize("payload", PAYLOADS, ids=[p.name for p in PAYLOADS])
def test_a_scripted_payload_is_live_under_torch_and_refused_by_robustcv(tmp_path, capsys, payload):
    live, marker = tmp_path / "LIVE", tmp_path / "MARKER"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        payload.run(torch.jit.load(str(save_script(payload.build(str(live)), tmp_path / "live.pt"))))
    assert live.exists(), "the crafted payload is not live; the refusal below would prove nothing"
    evil = save_script(payload.build(str(marker)), tmp_path / "evil.pt")
    code, err = attack(capsys, tmp_path, evil)
    assert_one_line(code, err, "refused")
    assert not marker.exists() and not (tmp_path / "run").exists()


class Legit(nn.Module):
    """Submodules, a ModuleList, a scripted helper method and plain control flow."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.blocks = nn.ModuleList([nn.Conv2d(4, 4, 3, padding=1) for _ in range(2)])
        self.head = nn.Linear(4, 10)

    @torch.jit.export
    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = x + torch.relu(block(x))
        if x.shape[0] > 1:
            x = x * 1.0
        return self.head(self.pool(x))


def test_a_legit_scripted_model_still_loads_with_the_same_logits(tmp_path):
    model = Legit().eval()
    path = save_script(model, tmp_path / "legit.pt")
    loaded = load_model_file(path)
    with torch.no_grad():
        assert torch.allclose(loaded(X), model(X), atol=1e-6)


def test_a_clean_scripted_model_runs_from_the_cli(tmp_path, capsys):
    """Control for the CLI path: the same flags on a clean file run to the end."""
    path = save_script(Head("unused"), tmp_path / "clean.pt")
    code, err = attack(capsys, tmp_path, path)
    assert code == 0, err


def flip_tensor_byte(src: Path, dst: Path) -> str:
    """Copy the zip with one byte of a stored tensor member changed (structure and CRCs kept as
    stored, so the CRC no longer matches); returns the member's name."""
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as archive:
        info = next(i for i in archive.infolist() if "/data/" in i.filename and i.compress_type == zipfile.ZIP_STORED)
        header = data[info.header_offset:info.header_offset + 30]
        start = info.header_offset + 30 + int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30],
                                                                                                     "little")
    data[start] ^= 0xFF
    dst.write_bytes(bytes(data))
    return info.filename


def test_an_archive_whose_tensor_data_was_altered_is_refused(tmp_path, capsys):
    good = save_script(Head("unused"), tmp_path / "good.pt")
    member = flip_tensor_byte(good, tmp_path / "altered.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.load(str(tmp_path / "altered.pt"))  # control: torch itself accepts it
    code, err = attack(capsys, tmp_path, tmp_path / "altered.pt")
    assert_one_line(code, err, member, "CRC")


def test_a_truncated_archive_and_an_empty_file_are_not_called_pickles(tmp_path, capsys):
    good = save_script(Head("unused"), tmp_path / "good.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(good[: len(good) // 2])
    (tmp_path / "empty.pt").write_bytes(b"")
    code, err = attack(capsys, tmp_path, tmp_path / "truncated.pt")
    line = assert_one_line(code, err, "truncated")
    assert "pickle" not in line
    code, err = attack(capsys, tmp_path, tmp_path / "empty.pt")
    line = assert_one_line(code, err, "empty")
    assert "pickle" not in line


def test_a_channel_mismatch_names_the_shapes_not_the_batch_dimension(tmp_path, capsys):
    """The model wants three channels; digits has one."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(10))
    model(torch.rand(2, 3, 8, 8))
    program = torch.export.export(model.eval(), (torch.rand(2, 3, 8, 8),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(tmp_path / "rgb.pt2"))
    code, err = attack(capsys, tmp_path, tmp_path / "rgb.pt2")
    line = assert_one_line(code, err, "(3, 8, 8)", "(1, 8, 8)")
    assert "dynamic" not in line
    scripted = save_script(model, tmp_path / "rgb.pt")
    code, err = attack(capsys, tmp_path, scripted)
    line = assert_one_line(code, err, "channels")
    assert "dynamic" not in line


def test_an_interface_call_is_refused_even_to_a_harmless_module(tmp_path):
    """The check cannot see which module sits behind an interface-typed attribute: refused."""
    class Clean(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    class Host(nn.Module):
        step: Step

        def __init__(self) -> None:
            super().__init__()
            self.step = Clean()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.step.forward(x).flatten(1)

    with pytest.raises(UserError, match="interface"):
        load_model_file(save_script(Host(), tmp_path / "host.pt"))


def test_a_graph_module_inside_an_exported_graph_is_checked_too(tmp_path):
    """``.pt2``: every GraphModule below the program's is read, not only the top graph."""
    inner = torch.fx.Graph()
    x = inner.placeholder("x")
    inner.call_function(torch.ops.aten.save.default, (x, str(tmp_path / "MARKER")))
    inner.output(x)
    outer = torch.fx.symbolic_trace(nn.Identity())
    outer.add_submodule("branch", torch.fx.GraphModule(nn.Module(), inner))
    with pytest.raises(UserError, match="save"):
        check_graph_modules(tmp_path / "x.pt2", outer)
    check_graph_modules(tmp_path / "x.pt2", torch.fx.symbolic_trace(nn.Identity()))  # control: a clean graph


class Detector(nn.Module):
    """torchvision's detection operators stay allowed: scores boxes, keeps the best after NMS."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 4.0, 4.1], [5.0, 5.0, 8.0, 8.0]])
        keep = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
        pooled = torchvision.ops.roi_align(x, [boxes[keep]], output_size=8)
        return self.head(pooled.sum(0, keepdim=True).expand(x.shape[0], -1, -1, -1).flatten(1))


def test_torchvision_detection_ops_are_allowed(tmp_path):
    model = Detector().eval()
    loaded = load_model_file(save_script(model, tmp_path / "det.pt"))
    with torch.no_grad():
        assert torch.allclose(loaded(X), model(X), atol=1e-6)


class Prints(Head):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        print("side effect")
        return self.head(x.flatten(1))


def test_print_in_scripted_code_is_refused(tmp_path):
    with pytest.raises(UserError, match="prim::Print"):
        load_model_file(save_script(Prints("unused"), tmp_path / "prints.pt"))


def test_a_member_present_twice_is_refused(tmp_path):
    """Python's zipfile reads the last copy of a name, torch's reader may read the first: the
    __setstate__ check could read a harmless copy while torch compiles the other."""
    good = save_script(Head("unused"), tmp_path / "good.pt")
    twice = tmp_path / "twice.pt"
    with zipfile.ZipFile(good) as zin:
        members = [(name, zin.read(name)) for name in zin.namelist()]
    code = next(m for m in members if "/code/" in m[0] and m[0].endswith(".py"))
    with zipfile.ZipFile(twice, "w") as zout, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        for name, data in [*members, code]:
            zout.writestr(name, data)
    with pytest.raises(UserError, match="twice"):
        load_model_file(twice)


def test_a_cpp_custom_class_in_the_archive_is_refused(tmp_path):
    """``torch.classes`` objects (here quantized packed weights) are rebuilt by native
    ``__setstate__`` code while loading: refused before torch reads the file."""
    model = torch.ao.quantization.quantize_dynamic(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), {nn.Linear},
                                                   dtype=torch.qint8)
    with pytest.raises(UserError, match="torch.classes"):
        load_model_file(save_script(model, tmp_path / "quantized.pt"))


@pytest.mark.parametrize("kind, allowed", [
    ("aten::add", True), ("prims::mul", True), ("prim::If", True), ("prim::Loop", True), ("torchvision::nms", True),
    ("aten::save", False), ("aten::from_file", False), ("aten::_print", False), ("prim::Print", False),
    ("prim::PythonOp", False), ("prim::Enter", False), ("prim::fork", False), ("prim::CallMethod", False),
    ("debugprims::load_tensor", False), ("quantized::linear", False), ("torchvision::unknown", False),
])
def test_the_operator_allowlist(kind, allowed):
    assert allowed_kind(kind) is allowed


def test_every_registered_aten_operator_named_for_files_is_refused():
    """Read from torch's own operator list, so a torch that adds such an operator fails here."""
    import re

    names = {schema.name for schema in torch._C._jit_get_all_schemas()}
    file_ops = {n for n in names
                if n.startswith(("aten::", "prims::")) and re.search(r"::_*(save|load|open|mmap)|file", n)}
    assert {"aten::save", "aten::from_file"} <= file_ops
    assert not [n for n in file_ops if allowed_kind(n)]
