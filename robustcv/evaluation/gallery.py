"""The example gallery: clean image, amplified perturbation, adversarial, with predictions."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from robustcv.results import GalleryItem, write_bytes_atomic
from robustcv.inference import predict

MIN_SIDE = 96


def gallery_for(out_dir: Path, model_name: str, run, samples, classes: Sequence[str], config,
                device: torch.device) -> list[GalleryItem]:
    """Examples from the strongest attack on the first defense (the undefended model by default)."""
    candidates = [o for o in run.outcomes if o.headline is not None]
    if not candidates or config.gallery <= 0:
        return []
    index = config.headline_index
    best = min(candidates, key=lambda o: float(o.correct[index].float().mean()))
    indices = pick_examples(run.clean_correct, ~best.correct[index], config.gallery)
    meta = {"model": model_name, "defense": run.spec, "attack": best.attack, "eps": float(best.eps[index])}
    return save_gallery(out_dir, run.judge, samples.x, best.headline, samples.y, indices, classes, meta, device)


def pick_examples(clean_correct: torch.Tensor, fooled: torch.Tensor, count: int) -> list[int]:
    """Originally-correct samples, fooled ones first, in index order."""
    fooled_idx = torch.nonzero(clean_correct & fooled).flatten().tolist()
    kept_idx = torch.nonzero(clean_correct & ~fooled).flatten().tolist()
    return (fooled_idx + kept_idx)[:count]


def save_gallery(out_dir: Path, judge: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                 indices: Sequence[int], classes: Sequence[str], meta: dict, device: torch.device) -> list[GalleryItem]:
    """Write three PNGs per example under ``out_dir/examples`` and describe them."""
    if not indices:
        return []
    idx = torch.tensor(list(indices))
    clean_p = torch.softmax(predict(judge, x[idx], device), 1)
    adv_p = torch.softmax(predict(judge, x_adv[idx], device), 1)
    items = []
    for row, i in enumerate(idx.tolist()):
        name = f"{meta['defense']}_{meta['attack']}_{i}".replace(":", "-").replace("/", "-")
        stem = f"examples/{name}"  # sanitize the name only: the folder's slash must stay
        delta = x_adv[i] - x[i]
        scale = float(delta.abs().max()) or 1.0
        paths = {}
        for kind, image in (("clean", x[i]), ("perturbation", 0.5 + delta / (2 * scale)), ("adversarial", x_adv[i])):
            paths[kind] = f"{stem}_{kind}.png"
            write_bytes_atomic(out_dir / paths[kind], png_bytes(image))
        c_conf, c_pred = clean_p[row].max(0)
        a_conf, a_pred = adv_p[row].max(0)
        items.append(GalleryItem(model=meta["model"], defense=meta["defense"], attack=meta["attack"], eps=meta["eps"],
                                 label=classes[int(y[i])], clean_pred=classes[int(c_pred)],
                                 clean_conf=round(float(c_conf), 4), adv_pred=classes[int(a_pred)],
                                 adv_conf=round(float(a_conf), 4), clean_path=paths["clean"],
                                 perturbation_path=paths["perturbation"], adversarial_path=paths["adversarial"]))
    return items


def png_bytes(image: torch.Tensor) -> bytes:
    """A [C, H, W] image in [0, 1] as PNG bytes, upscaled (nearest) so small images stay visible."""
    image = image.detach().float().clamp(0, 1).cpu()
    side = max(image.shape[-2:])
    if side < MIN_SIDE:
        factor = -(-MIN_SIDE // side)
        image = F.interpolate(image[None], scale_factor=factor, mode="nearest")[0]
    array = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    mode = "L" if array.shape[2] == 1 else "RGB"
    buffer = io.BytesIO()
    Image.fromarray(array[:, :, 0] if mode == "L" else array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()
