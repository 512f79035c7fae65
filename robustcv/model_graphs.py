"""What a loaded model file may run: every graph it can execute is checked against an allowlist.

The check is sound by construction rather than a list of known tricks. For a TorchScript module,
every method of every submodule (``forward``, exported methods, property getters, magic methods)
and every forward hook and pre-hook is read as its inlined graph, block by block; a call that
inlining could not resolve (a ``prim::CallMethod`` through an interface-typed attribute, a
``prim::CallFunction`` of a function value) is refused, and so is any node carrying a subgraph
(``prim::fork``), since its code is not in the graph being read. What remains may only be:

- ``aten::`` and ``prims::`` operators, except those that touch files, print or wait on futures;
- the ``prim::`` nodes that build the graph's structure and control flow (:data:`SCRIPT_PRIM`);
- the side-effect-free torchvision operators detectors need (:data:`TORCHVISION_OPS`).

Anything else is a one-line :class:`~robustcv.errors.UserError`. A ``torch.export`` program's
graph modules (every submodule's graph included) get the same operator rule.
"""
from __future__ import annotations

import operator
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
from torch import nn

from robustcv.errors import UserError

GRAPH_NAMESPACES = frozenset({"aten", "prims"})
# aten operators with effects outside the tensors: file access, printing, futures.
REFUSED_OPS = frozenset({"aten::save", "aten::from_file", "aten::_print", "aten::wait"})
SCRIPT_PRIM = frozenset({
    "prim::Constant", "prim::GetAttr", "prim::SetAttr", "prim::If", "prim::Loop", "prim::Return",
    "prim::ListConstruct", "prim::ListUnpack", "prim::TupleConstruct", "prim::TupleUnpack", "prim::TupleIndex",
    "prim::TupleSlice", "prim::DictConstruct", "prim::DictIndex", "prim::CreateObject", "prim::RaiseException",
    "prim::Uninitialized", "prim::unchecked_cast", "prim::isinstance", "prim::NumToTensor", "prim::ImplicitTensorToNum",
    "prim::device", "prim::dtype", "prim::layout", "prim::is_cuda", "prim::is_cpu", "prim::is_nested",
    "prim::is_quantized", "prim::is_sparse", "prim::is_mkldnn", "prim::requires_grad", "prim::data", "prim::shape",
    "prim::max", "prim::min", "prim::abs", "prim::tolist", "prim::type", "prim::EnumName", "prim::EnumValue",
    "prim::StringIndex", "prim::AutogradZero", "prim::ConstantChunk", "prim::BroadcastSizes",
})
TORCHVISION_OPS = frozenset({
    "torchvision::nms", "torchvision::roi_align", "torchvision::roi_pool", "torchvision::ps_roi_align",
    "torchvision::ps_roi_pool", "torchvision::deform_conv2d", "torchvision::box_iou_rotated",
})
ALLOWED = "aten/prims operators without file access, TorchScript structure, torchvision's detection operators"


def allowed_kind(kind: str) -> bool:
    """Whether a graph node of this kind (``namespace::name``) may run."""
    if kind in REFUSED_OPS:
        return False
    return kind.split("::")[0] in GRAPH_NAMESPACES or kind in SCRIPT_PRIM or kind in TORCHVISION_OPS


# --- TorchScript --------------------------------------------------------------------------------


def check_script_module(path: Path, module: torch.jit.ScriptModule) -> None:
    """Refuse a loaded TorchScript module any of whose runnable graphs leaves the allowlist."""
    try:
        for where, graph in script_graphs(module):
            for node in _nodes(graph.nodes()):
                problem = _node_problem(node)
                if problem:
                    raise UserError(f"{path}: {where} {problem}; refused (a model file may run only {ALLOWED})")
    except RuntimeError as exc:  # torch could not inline or read a graph: unchecked, so not run
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{path}: robustcv cannot read every graph of the model ({first}); refused") from None


def script_graphs(module: torch.jit.ScriptModule) -> Iterator[tuple[str, Any]]:
    """(where, inlined graph) for every method and every hook of every submodule."""
    for name, sub in module.named_modules():
        label = f"submodule {name}" if name else "the model"
        script = getattr(sub, "_c", None)
        if script is None:  # a plain nn.Module inside a ScriptModule cannot come out of torch.jit.load
            raise UserError(f"module {name!r} of the loaded file is not TorchScript; refused")
        for method in script._method_names():
            yield f"{label}'s method {method}", script._get_method(method).inlined_graph
        for kind, hooks in (("forward hook", script._get_forward_hooks()),
                            ("forward pre-hook", script._get_forward_pre_hooks())):
            for hook in hooks:
                yield f"{label}'s {kind} {hook.name}", hook.inlined_graph


def _nodes(nodes: Iterable[Any]) -> Iterator[Any]:
    for node in nodes:
        yield node
        for block in node.blocks():
            yield from _nodes(block.nodes())


def _node_problem(node: Any) -> str:
    """Why this node may not run ("" when it may)."""
    kind = node.kind()
    if kind == "prim::CallMethod":
        owner = node.inputsAt(0).type()
        what = "an interface" if isinstance(owner, torch.InterfaceType) else "a type"
        return f"calls {node.s('name')} through {what} ({owner.annotation_str}), which the check cannot see through"
    if kind == "prim::CallFunction":
        return "calls a function value, which the check cannot resolve"
    if any(node.kindOf(a) in ("g", "gs") for a in node.attributeNames()):
        return f"runs a subgraph ({kind}), which the check cannot see through"
    return "" if allowed_kind(kind) else f"calls {kind}"


# --- torch.export -------------------------------------------------------------------------------


def check_graph_modules(path: Path, root: nn.Module) -> None:
    """Refuse an exported program any of whose graph modules (submodules included) calls an
    operator outside the allowlist; higher-order operators are refused too."""
    for module in root.modules():
        if isinstance(module, torch.fx.GraphModule):
            for node in module.graph.nodes:
                if not _fx_allowed(node):
                    target = getattr(node.target, "__name__", node.target)
                    raise UserError(f"{path} calls {target}, which robustcv does not run "
                                    f"(only {'/'.join(sorted(GRAPH_NAMESPACES))} operators without file access)")


def _fx_allowed(node: torch.fx.Node) -> bool:
    if node.op in ("placeholder", "output", "get_attr"):
        return True
    if node.op != "call_function":
        return False
    target = node.target
    if target is operator.getitem:
        return True
    return isinstance(target, torch._ops.OpOverload) and allowed_kind(target.name().split(".")[0])
