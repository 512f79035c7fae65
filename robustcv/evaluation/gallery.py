"""The example gallery: clean image, amplified perturbation, adversarial, with predictions."""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from robustcv.metrics import segmentation
from robustcv.inference import predict
from robustcv.tasks import DEFAULT_TASK, TaskDefinition, get_task
from robustcv.results import GalleryItem, write_bytes_atomic

MIN_SIDE = 96


def gallery_for(out_dir: Path, model_name: str, run, samples, classes: Sequence[str], config,
                device: torch.device, task: TaskDefinition | None = None) -> list[GalleryItem]:
    """Examples from the strongest attack on the first defense (the undefended model by default);
    ``task`` turns logits into class probabilities (default: a softmax over classes)."""
    candidates = [o for o in run.outcomes if o.headline is not None]
    if not candidates or config.gallery <= 0:
        return []
    index = config.headline_index
    best = min(candidates, key=lambda o: o.scores()[index])
    meta = {"model": model_name, "defense": run.spec, "attack": best.attack, "eps": float(best.eps[index])}
    if run.clean_confusion is not None:
        indices = largest_drops(run.clean_confusion, best.confusion[index], config.gallery)
        right = {"clean": segmentation.pixel_accuracy(run.clean_confusion),
                 "adversarial": segmentation.pixel_accuracy(best.confusion[index])}
        return save_mask_gallery(out_dir, run.judge, samples.x, best.headline, samples.y, indices, meta, device,
                                 right)
    indices = pick_examples(run.clean_correct, ~best.correct[index], config.gallery)
    if run.clean_margins is not None:
        items = save_gallery(out_dir, run.judge, samples.x, best.headline, samples.y, indices, None, meta, device)
        return label_set_items(items, indices, samples.y, run.clean_margins, best.label_margins[index], classes)
    return save_gallery(out_dir, run.judge, samples.x, best.headline, samples.y, indices, classes, meta, device,
                        task)


def largest_drops(clean: torch.Tensor, attacked: torch.Tensor, count: int) -> list[int]:
    """Segmentation: the images whose pixel accuracy the attack lowered most (per-image
    confusion matrices ``[N, K, K]``), largest drop first."""
    drop = segmentation.pixel_accuracy(clean) - segmentation.pixel_accuracy(attacked)
    return drop.argsort(descending=True, stable=True)[:count].tolist()


def pick_examples(clean_correct: torch.Tensor, fooled: torch.Tensor, count: int) -> list[int]:
    """Originally-correct samples, fooled ones first, in index order."""
    fooled_idx = torch.nonzero(clean_correct & fooled).flatten().tolist()
    kept_idx = torch.nonzero(clean_correct & ~fooled).flatten().tolist()
    return (fooled_idx + kept_idx)[:count]


def save_gallery(out_dir: Path, judge: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                 indices: Sequence[int], classes: Sequence[str] | None, meta: dict,
                 device: torch.device, task: TaskDefinition | None = None) -> list[GalleryItem]:
    """Write three PNGs per example under ``out_dir/examples`` and describe them (``classes``
    None: a segmenter's, whose labels and predictions are masks)."""
    if not indices:
        return []
    idx = torch.tensor(list(indices))
    if classes is not None:
        task = task or get_task(DEFAULT_TASK)
        clean_p = task.class_probabilities(predict(judge, x[idx], device))
        adv_p = task.class_probabilities(predict(judge, x_adv[idx], device))
    items = []
    for row, i in enumerate(idx.tolist()):
        name = re.sub(r"[^A-Za-z0-9_.=-]+", "-", f"{meta['defense']}_{meta['attack']}_{i}")
        stem = f"examples/{name}"  # sanitize the name only: the folder's slash must stay
        delta = x_adv[i] - x[i]
        scale = float(delta.abs().max()) or 1.0
        paths = {}
        for kind, image in (("clean", x[i]), ("perturbation", 0.5 + delta / (2 * scale)), ("adversarial", x_adv[i])):
            paths[kind] = f"{stem}_{kind}.png"
            write_bytes_atomic(out_dir / paths[kind], png_bytes(image))
        if classes is None:  # segmentation: the caller adds the masks
            label, clean_pred, c_conf, adv_pred, a_conf = "mask", "mask", float("nan"), "mask", float("nan")
        else:
            c_conf, c_pred = clean_p[row].max(0)
            a_conf, a_pred = adv_p[row].max(0)
            label, clean_pred, adv_pred = classes[int(y[i])], classes[int(c_pred)], classes[int(a_pred)]
        items.append(GalleryItem(model=meta["model"], defense=meta["defense"], attack=meta["attack"], eps=meta["eps"],
                                 label=label, clean_pred=clean_pred, clean_conf=round(float(c_conf), 4),
                                 adv_pred=adv_pred, adv_conf=round(float(a_conf), 4), clean_path=paths["clean"],
                                 perturbation_path=paths["perturbation"], adversarial_path=paths["adversarial"]))
    return items


def save_mask_gallery(out_dir: Path, judge: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                      indices: Sequence[int], meta: dict, device: torch.device,
                      right: dict[str, torch.Tensor]) -> list[GalleryItem]:
    """Segmentation: the three images of :func:`save_gallery` plus the true, clean and
    adversarial masks in the dataset's colours; confidences hold each image's pixel accuracy
    (``right["clean"]``, ``right["adversarial"]``: per image, from the run's confusion matrices)."""
    from robustcv.data.palette import colorize

    items = save_gallery(out_dir, judge, x, x_adv, y, indices, None, meta, device)
    idx = torch.tensor(list(indices))
    predicted = {"clean": predict(judge, x[idx], device), "adversarial": predict(judge, x_adv[idx], device)}
    for row, (item, i) in enumerate(zip(items, idx.tolist())):
        stem = item.clean_path[: -len("_clean.png")]
        masks = {"truth": y[i], "clean": predicted["clean"][row].argmax(0), "adversarial": predicted["adversarial"][row].argmax(0)}
        for kind, mask in masks.items():
            path = f"{stem}_{kind}_mask.png"
            colours = torch.from_numpy(colorize(mask.cpu())).permute(2, 0, 1).float() / 255
            write_bytes_atomic(out_dir / path, png_bytes(colours))
            setattr(item, f"{kind}_mask_path", path)
        item.clean_conf = round(float(right["clean"][i]), 4)
        item.adv_conf = round(float(right["adversarial"][i]), 4)
    return items


def label_set_items(items: list[GalleryItem], indices: Sequence[int], y: torch.Tensor, clean: torch.Tensor,
                    adversarial: torch.Tensor, classes: Sequence[str]) -> list[GalleryItem]:
    """Multi-label: each item's true, clean and adversarial label sets (from the label margins
    ``[N, K]``, positive = present); the confidences hold the share of label decisions right."""
    for item, i in zip(items, indices):
        truth = y[i].bool()
        item.label = label_set(truth, classes)
        item.clean_pred, item.adv_pred = label_set(clean[i] > 0, classes), label_set(adversarial[i] > 0, classes)
        item.clean_conf = round(float(((clean[i] > 0) == truth).float().mean()), 4)
        item.adv_conf = round(float(((adversarial[i] > 0) == truth).float().mean()), 4)
    return items


def label_set(present: torch.Tensor, classes: Sequence[str]) -> str:
    """``{circle, star}`` for a bool ``[K]`` vector; ``{}`` when no label is present."""
    return "{" + ", ".join(classes[k] for k in present.nonzero().flatten().tolist()) + "}"


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
