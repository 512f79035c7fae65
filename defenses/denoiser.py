"""A learned input denoiser (DnCNN-lite, residual) and its training, saving and loading.

The denoiser is trained to map adversarial (PGD on the protected classifier) and Gaussian-noisy
images back to the clean ones (MagNet/HGD style, Liao et al. 2018). It is differentiable, so
white-box attacks through it are the adaptive evaluation. Files: ``denoiser.safetensors``
(weights, no pickle) and ``denoiser.json`` (architecture and training config).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attacks.frozen import eval_frozen
from defenses.base import InputDefense

WEIGHTS, SIDECAR, FORMAT = "denoiser.safetensors", "denoiser.json", "robustcv-denoiser/1"


class Denoiser(InputDefense):
    """Residual conv denoiser: ``clamp(x - net(x), 0, 1)`` with ``net`` a DnCNN-lite stack.

    Args:
        channels: image channels.
        width: feature maps per hidden layer.
        depth: conv layers (>= 2), 3x3, ReLU between.
    """

    name = "denoiser"
    learned = True

    def __init__(self, channels: int = 1, width: int = 32, depth: int = 5) -> None:
        super().__init__()
        if channels < 1 or width < 1 or depth < 2:
            raise ValueError(f"bad denoiser shape: channels={channels} width={width} depth={depth}")
        self.channels, self.width, self.depth = int(channels), int(width), int(depth)
        sizes = [channels] + [width] * (depth - 1) + [channels]
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate(zip(sizes, sizes[1:])):
            layers.append(nn.Conv2d(cin, cout, 3, padding=1))
            if i < depth - 1:
                layers.append(nn.ReLU(inplace=True))
        self.net = nn.Sequential(*layers)
        nn.init.zeros_(self.net[-1].weight)  # start as the identity
        nn.init.zeros_(self.net[-1].bias)
        self.path: str | None = None
        self.config: dict[str, Any] = {}
        self.history: list[dict[str, float]] = []

    def spec(self) -> str:  # noqa: D102
        return f"denoiser:{self.path}" if self.path else "denoiser"

    def transform(self, x: Tensor) -> Tensor:  # noqa: D102
        if x.shape[1] != self.channels:
            raise ValueError(f"denoiser expects {self.channels} channels, got {x.shape[1]}")
        return (x - self.net(x)).clamp(0, 1)

    def bpda(self, x: Tensor) -> Tensor:  # noqa: D102
        return self(x)


def _batches(data: Any, batch_size: int, generator: torch.Generator) -> Iterable[tuple[Tensor, Tensor]]:
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], Tensor):
        x, y = data
        order = torch.randperm(len(x), generator=generator)
        for idx in order.split(batch_size):
            yield x[idx], y[idx]
    else:
        for batch in data:
            yield batch[0], batch[1]


def _default_attack() -> Callable[..., Tensor]:
    from attacks import PGD

    return PGD(norm="linf", steps=10, early_stop=False)


def train_denoiser(
    model: nn.Module, data: Any, attack: Callable[..., Tensor] | None = None, *, eps: float = 0.1,
    epochs: int = 5, lr: float = 1e-3, noise_sigma: float | None = None, batch_size: int = 128,
    loss: str = "mse", denoiser: Denoiser | None = None, seed: int = 0,
) -> Denoiser:
    """Train a denoiser that maps adversarial and noisy images back to clean ones.

    Each batch contributes ``attack(model, x, y, eps)`` (crafted on the undefended model, which
    stays frozen) and ``x + N(0, noise_sigma)``; the target is ``x``.

    Args:
        model: the classifier to protect, [0, 1] images -> logits (never updated).
        data: a loader yielding ``(x, y)`` or a pair of tensors ``(x, y)``.
        attack: ``attack(model, x, y, eps) -> x_adv``; default ``attacks.PGD(steps=10)``.
        eps: attack budget (L-inf, [0, 1] pixels).
        epochs, lr, batch_size, seed: Adam training settings (batch_size for tensor data).
        noise_sigma: Gaussian noise std; default ``eps``.
        loss: ``"mse"`` (pixels) or ``"hgd"`` (L1 between the model's logits on the denoised
            and the clean image, Liao et al. 2018).
        denoiser: continue training this one; default a fresh ``Denoiser(channels)``.

    Returns:
        The denoiser in eval mode; ``history`` holds per-epoch mean loss and adversarial MSE.
    """
    if loss not in ("mse", "hgd"):
        raise ValueError(f"denoiser loss must be 'mse' or 'hgd', got {loss!r}")
    gen = torch.Generator().manual_seed(seed)
    attack = attack or _default_attack()
    sigma = eps if noise_sigma is None else noise_sigma
    den = denoiser
    opt = None
    for epoch in range(epochs):
        total, adv_se, n = 0.0, 0.0, 0
        for x, y in _batches(data, batch_size, gen):
            if den is None:
                den = Denoiser(x.shape[1]).to(x.device)
            if opt is None:
                opt = torch.optim.Adam(den.parameters(), lr=lr)
            x_adv = attack(model, x, y, eps).detach()
            noise = torch.randn(x.shape, generator=gen).to(x.device) * sigma
            inputs, clean = torch.cat([x_adv, (x + noise).clamp(0, 1)]), torch.cat([x, x])
            den.train()
            out = den(inputs)
            if loss == "mse":
                batch_loss = F.mse_loss(out, clean)
            else:
                with eval_frozen(model):
                    with torch.no_grad():
                        ref = model(clean)
                    batch_loss = (model(out) - ref).abs().mean()
            opt.zero_grad(set_to_none=True)
            batch_loss.backward()
            opt.step()
            total += batch_loss.item() * len(x)
            adv_se += (out[: len(x)] - x).pow(2).mean().item() * len(x)
            n += len(x)
        den.history.append({"epoch": epoch + 1, "loss": total / max(n, 1), "adv_mse": adv_se / max(n, 1)})
    if den is None:
        raise ValueError("train_denoiser got no data")
    den.config = {"eps": eps, "epochs": epochs, "lr": lr, "noise_sigma": sigma, "batch_size": batch_size,
                  "loss": loss, "seed": seed}
    return den.eval()


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes files 0o600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_denoiser(den: Denoiser, directory: str | os.PathLike) -> Path:
    """Write ``denoiser.safetensors`` + ``denoiser.json`` into ``directory`` (atomically); returns it."""
    from safetensors.torch import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in den.state_dict().items()}
    _atomic_write(out / WEIGHTS, lambda p: save_file(tensors, p, metadata={"format": FORMAT}))
    meta = {"format": FORMAT, "channels": den.channels, "width": den.width, "depth": den.depth,
            "config": den.config, "history": den.history}
    _atomic_write(out / SIDECAR, lambda p: Path(p).write_text(json.dumps(meta, indent=2)))
    return out


def load_denoiser(path: str | os.PathLike) -> Denoiser:
    """Load a denoiser from its directory (or its ``.safetensors`` file), in eval mode.

    Raises:
        FileNotFoundError: no denoiser files there.
        ValueError: the files are not a valid denoiser.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path)
    weights = p / WEIGHTS if p.is_dir() else p
    sidecar = weights.with_name(SIDECAR)
    if not weights.is_file() or not sidecar.is_file():
        raise FileNotFoundError(f"no denoiser at {path} (need {WEIGHTS} and {SIDECAR})")
    try:
        meta = json.loads(sidecar.read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"unknown format {meta.get('format')!r}")
        den = Denoiser(meta["channels"], meta["width"], meta["depth"])
        den.load_state_dict(load_file(str(weights)))
    except (ValueError, KeyError, RuntimeError, OSError, SafetensorError) as e:  # json errors are ValueErrors
        raise ValueError(f"corrupt denoiser at {path}: {str(e).splitlines()[0]}") from None
    den.path, den.config, den.history = str(path), meta.get("config", {}), meta.get("history", [])
    return den.eval()
