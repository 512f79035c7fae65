"""``ensemble:A+B+C``: independently trained members whose logits are averaged into one model.

The ensemble is one ``nn.Module`` (``EnsembleNet``), so an attack on it is white-box through
every member: the input gradient of the averaged logits is the mean of the members' gradients.

Why logits and not probabilities: averaging logits is how this ensemble predicts, and the honest
evaluation attacks exactly the function that predicts. Averaged softmax outputs would be another
classifier, and their cross-entropy, ``-log mean_i p_i(y)``, stays below ``log(M)`` while any one
of the ``M`` members is confidently right, a member whose saturated softmax passes almost no
gradient: gradient attacks get weaker without the model being more robust (the gradient masking
AutoAttack's checks warn about). Under logit averaging every member's gradient counts in full.

Members share the dataset's normalization (they are trained on the same data), so the checkpoint
is ``RobustModel(Normalize, EnsembleNet([net_0, net_1, ...]))``: member ``i``'s weights sit under
``net.members.i.`` in one ``model.safetensors``. Each member is also written as its own
sub-checkpoint (``members/member-<i>-<name>/``) so it can be attacked alone (see ``member_dirs``).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from robustcv.errors import UserError
from robustcv.models.registry import ENSEMBLE_PATTERN, ENSEMBLE_PREFIX, get_entry
from robustcv.models.wrapper import RobustModel

MEMBERS_DIR = "members"


class EnsembleNet(nn.Module):
    """``mean_i members[i](x)``: normalized images in, the members' averaged logits out."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x) for member in self.members]).mean(dim=0)


def is_ensemble(name: str) -> bool:
    """Whether a model name is an ``ensemble:`` spec."""
    return name.lower().startswith(ENSEMBLE_PREFIX)


def parse_ensemble(name: str) -> list[str]:
    """``ensemble:A+B+C`` -> ``[A, B, C]``; at least two members, each a registered single model.

    Raises:
        UserError: an empty member list, an empty member, a single member or an unknown name.
    """
    members = name[len(ENSEMBLE_PREFIX):].split("+")
    if len(members) < 2 or not all(m.strip() for m in members):
        raise UserError(f"'{name}': an ensemble is written {ENSEMBLE_PATTERN} with at least two members, "
                        "e.g. ensemble:small_cnn+small_cnn+deep_cnn")
    members = [m.strip() for m in members]
    for member in members:
        if ":" in member and member.split(":", 1)[0].lower() in ("ensemble", "dual"):
            raise UserError(f"'{name}': an ensemble member must be a single model, not '{member}'")
        get_entry(member)
    return members


def member_specs(spec) -> list:
    """The members' ``ModelSpec``s: the ensemble's head, weights and input settings, each member's name."""
    return [dataclasses.replace(spec, name=member) for member in parse_ensemble(spec.name)]


def build_ensemble(spec, info, build_member: Callable) -> nn.Module:
    """``RobustModel(EnsembleNet)`` of freshly built members.

    Args:
        spec, info: the ensemble's ``ModelSpec`` and the dataset's ``DataInfo``.
        build_member: ``(member spec, info) -> RobustModel`` (``build_model``, passed in so that
            this module does not import the one that imports it).
    """
    nets = [build_member(member, info).net for member in member_specs(spec)]
    return RobustModel(EnsembleNet(nets), info.mean, info.std)


def member_dir_name(index: int, name: str) -> str:
    """``member-<index>-<name>``, filesystem-safe (a family's ``:`` becomes ``_``): the member's
    sub-checkpoint folder and its name in reports."""
    return f"member-{index}-{name}".replace(":", "_").replace("/", "_")


def member_dirs(checkpoint: str | Path, spec) -> list[Path]:
    """The members' sub-checkpoints of an ensemble checkpoint, in member order."""
    names = parse_ensemble(spec.name)
    return [Path(checkpoint) / MEMBERS_DIR / member_dir_name(i, name) for i, name in enumerate(names)]
