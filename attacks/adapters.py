"""Adapters: foolbox, ART and torchattacks attacks behind :class:`attacks.base.Attack`'s ``__call__``.

``get_attack("foolbox:LinfPGD", steps=10)`` and ``get_attack("art:ProjectedGradientDescent",
max_iter=10)`` pass their keyword arguments to the peer's constructor. The peer library is
imported only when such an attack is built. Our base class still owns the contract: eval mode,
frozen parameters, clipping to the eps ball and [0, 1], eps 0 returns ``x``. Minimal-norm attacks
(CW, DeepFool, FMN) get eps as their ``epsilons`` (foolbox) and are clipped to it; foolbox's
minimization attacks also offer ``minimal`` (no budget: each sample's smallest adversarial).
``get_attack("torchattacks:AutoAttack", version="standard")`` builds the torchattacks class
per call with the call's eps (their constructors take the model and eps). The adapters support
classification only (labels of shape [B]).
"""
from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator

import torch
from torch import nn

from attacks.base import Attack
from attacks.norms import Norm


def build(library: str, name: str, **kwargs) -> Attack:
    """``FoolboxAttack``, ``ArtAttack`` or ``TorchattacksAttack`` for ``library``."""
    return {"foolbox": FoolboxAttack, "art": ArtAttack, "torchattacks": TorchattacksAttack}[library](name, **kwargs)


def _import(module: str, package: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise ValueError(f"{package} is not installed; pip install 'robustcv[peers]'") from None


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Seed torch's and numpy's global RNGs for the body (peers use them), then restore them."""
    if seed is None:
        yield
        return
    import numpy as np

    state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(state)


def _check_classification(y: torch.Tensor, library: str) -> None:
    if y.dim() != 1:
        raise ValueError(f"{library} adapters support classification only (labels [B]), got {tuple(y.shape)}")


class FoolboxAttack(Attack):
    """Any ``foolbox.attacks`` class; the norm comes from the attack's own distance.

    Example:
        >>> attack = get_attack("foolbox:LinfPGD", steps=10, abs_stepsize=0.01)
        >>> x_adv = attack(model, x, y, eps=0.1)
    """

    def __init__(self, name: str, targeted: bool = False, seed: int | None = None, **kwargs) -> None:
        fb = _import("foolbox", "foolbox")
        cls = getattr(fb.attacks, name, None)
        if not (inspect.isclass(cls) and issubclass(cls, fb.attacks.base.Attack)):
            raise ValueError(f"foolbox has no attack {name!r} (see foolbox.attacks)")
        try:
            self.peer = cls(**kwargs)
        except TypeError as exc:
            raise ValueError(f"bad arguments for foolbox:{name}: {exc}") from None
        p = getattr(getattr(self.peer, "distance", None), "p", None)
        if p not in (2, float("inf")):
            raise ValueError(f"foolbox:{name} measures distance with p={p}; only L∞ and L2 are supported")
        super().__init__(norm=Norm.L2 if p == 2 else Norm.LINF, targeted=targeted, seed=seed)
        self.name = f"foolbox:{name}"
        self.minimizes = isinstance(self.peer, fb.attacks.base.MinimizationAttack)

    def run(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float,
            generator: torch.Generator | None) -> torch.Tensor:
        return self._call_peer(model, x, labels, eps)[1]  # clipped to eps

    def run_minimal(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self._call_peer(model, x, labels, None)[0]  # None: minimize, no budget

    def _call_peer(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float | None) -> tuple:
        _check_classification(labels, "foolbox")
        fb = _import("foolbox", "foolbox")
        fmodel = fb.PyTorchModel(model, bounds=(0.0, 1.0), device=x.device)
        criterion = fb.criteria.TargetedMisclassification(labels) if self.targeted else labels
        with _seeded(self.seed):
            return self.peer(fmodel, x, criterion, epsilons=eps)

    def _repr_args(self) -> dict:
        return {"name": self.name, **super()._repr_args()}


class ArtAttack(Attack):
    """Any ART evasion attack, through a ``PyTorchClassifier`` with clip values (0, 1).

    Our ``norm`` (default ``"linf"``) and the call's eps are passed as ART's ``norm``/``eps``
    where the constructor takes them. Defaults that differ from ART's: ``eps_step`` =
    ``2.5 * eps / max_iter`` (ART's fixed 0.1 ignores eps), ``batch_size`` = the whole batch,
    ``verbose`` = False.

    Example:
        >>> attack = get_attack("art:ProjectedGradientDescent", max_iter=10)
        >>> x_adv = attack(model, x, y, eps=0.1)
    """

    def __init__(self, name: str, norm: Norm | str = "linf", targeted: bool = False,
                 seed: int | None = None, **kwargs) -> None:
        evasion = _import("art.attacks.evasion", "adversarial-robustness-toolbox")
        self.cls = getattr(evasion, name, None)
        if not inspect.isclass(self.cls):
            raise ValueError(f"ART has no evasion attack {name!r} (see art.attacks.evasion)")
        self.params = inspect.signature(self.cls.__init__).parameters
        if targeted and "targeted" not in self.params:
            raise ValueError(f"art:{name} has no targeted mode")
        unknown = set(kwargs) - set(self.params)
        if unknown:
            raise ValueError(f"bad arguments for art:{name}: unexpected {', '.join(sorted(unknown))}")
        super().__init__(norm=norm, targeted=targeted, seed=seed)
        self.name, self.kwargs = f"art:{name}", kwargs

    def run(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float,
            generator: torch.Generator | None) -> torch.Tensor:
        _check_classification(labels, "ART")
        with torch.no_grad():
            num_classes = model(x[:1]).shape[1]
        attack = self.cls(self._classifier(model, x, num_classes), **self._peer_kwargs(eps))
        with _seeded(self.seed):
            x_adv = attack.generate(x.cpu().numpy(), y=labels.cpu().numpy())
        return torch.from_numpy(x_adv).to(device=x.device, dtype=x.dtype)

    def _classifier(self, model: nn.Module, x: torch.Tensor, num_classes: int):
        from art.estimators.classification import PyTorchClassifier

        return PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                                 nb_classes=num_classes, clip_values=(0.0, 1.0),
                                 device_type="gpu" if x.is_cuda else "cpu")

    def _peer_kwargs(self, eps: float) -> dict:
        """Our eps/norm/targeted plus ART defaults that scale with eps; user kwargs win."""
        import numpy as np

        kw = {"eps": eps, "norm": np.inf if self.norm is Norm.LINF else 2, "targeted": self.targeted,
              "verbose": False, "batch_size": 1 << 30}
        if "eps_step" in self.params:
            iters = self.kwargs.get("max_iter", self.params["max_iter"].default if "max_iter" in self.params else 1)
            kw["eps_step"] = 2.5 * eps / iters if "max_iter" in self.params else eps
        kw = {k: v for k, v in kw.items() if k in self.params}
        return {**kw, **self.kwargs}

    def _repr_args(self) -> dict:
        return {"name": self.name, **super()._repr_args(), **self.kwargs}


_TORCHATTACKS_L2 = ("CW", "DeepFool")  # L2 attacks whose name does not say so
_TORCHATTACKS_OTHER = ("EADEN", "EADL1", "JSMA", "OnePixel", "Pixle", "SparseFool")  # L0/L1


def _torchattacks_norm(name: str, kwargs: dict) -> Norm:
    """L2 for ``...L2`` classes, CW, DeepFool and ``norm="L2"``; L∞ otherwise; L0/L1 refused."""
    norm = str(kwargs.get("norm", "L2" if "L2" in name or name in _TORCHATTACKS_L2 else "Linf")).lower()
    if name in _TORCHATTACKS_OTHER or norm not in ("linf", "l2"):
        raise ValueError(f"torchattacks:{name} measures L0/L1 perturbations; only L∞ and L2 are supported")
    return Norm(norm)


class _Logits(nn.Module):
    """The model under a neutral class name: torchattacks turns on its own input normalization
    for models named ``RobModel`` (MAIR), and ours already normalize inside."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class TorchattacksAttack(Attack):
    """Any ``torchattacks`` attack; built per call as ``cls(model, eps=eps, **kwargs)``.

    The norm comes from the class name (``...L2`` classes, CW and DeepFool are L2; minimal-norm
    classes without an eps are clipped to the call's eps) or its ``norm`` argument
    (``"Linf"``/``"L2"``, e.g. for ``AutoAttack`` and ``APGD``); ``n_classes`` is read from the
    model (one forward pass) when the class takes it; ``seed`` is passed where the class takes
    one and seeds torch's global RNG for the call (then restored). ``targeted=True`` uses
    torchattacks' ``set_mode_targeted_by_label`` (the call's ``target`` are the labels it aims
    at). Inputs stay in [0, 1]: torchattacks adds no normalization (the model normalizes inside).

    Example:
        >>> attack = get_attack("torchattacks:AutoAttack", version="standard")
        >>> x_adv = attack(model, x, y, eps=8 / 255)
    """

    def __init__(self, name: str, targeted: bool = False, seed: int | None = None, **kwargs) -> None:
        ta = _import("torchattacks", "torchattacks")
        self.cls = getattr(ta, name, None)
        if not (inspect.isclass(self.cls) and issubclass(self.cls, ta.attack.Attack)):
            raise ValueError(f"torchattacks has no attack {name!r} (see torchattacks' list)")
        self.params = inspect.signature(self.cls.__init__).parameters
        unknown = set(kwargs) - set(self.params)
        if unknown:
            raise ValueError(f"bad arguments for torchattacks:{name}: unexpected {', '.join(sorted(unknown))}")
        if "eps" in kwargs:
            raise ValueError(f"torchattacks:{name}: eps is the call's budget, not a constructor argument")
        super().__init__(norm=_torchattacks_norm(name, kwargs), targeted=targeted, seed=seed)
        self.name, self.kwargs = f"torchattacks:{name}", kwargs

    def run(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float,
            generator) -> torch.Tensor:
        _check_classification(labels, "torchattacks")
        budget = {"eps": eps} if "eps" in self.params else {}  # minimal-norm CW/DeepFool: clipped to eps
        peer = self.cls(_Logits(model), **budget, **self._peer_kwargs(model, x))
        if self.targeted:
            peer.set_mode_targeted_by_label(quiet=True)
        # Classes that take a seed reseed torch's global RNG themselves (default 0): keep the caller's.
        devices = [x.device] if x.is_cuda else []
        with torch.random.fork_rng(devices=devices, enabled="seed" in self.params), _seeded(self.seed):
            return peer(x, labels)

    def _peer_kwargs(self, model: nn.Module, x: torch.Tensor) -> dict:
        kw = {}
        if "n_classes" in self.params:
            with torch.no_grad():
                kw["n_classes"] = model(x[:1]).shape[1]
        if "seed" in self.params and self.seed is not None:
            kw["seed"] = self.seed
        return {**kw, **self.kwargs}

    def _repr_args(self) -> dict:
        return {"name": self.name, **super()._repr_args(), **self.kwargs}
