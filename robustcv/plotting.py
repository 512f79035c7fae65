"""Deterministic matplotlib figures shared by training and the report."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from robustcv.results import write_bytes_atomic  # noqa: E402


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Save a PNG without timestamps (byte-identical across runs) and close the figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())
    return Path(path)


def learning_curve_figure(history: Sequence[dict[str, Any]], title: str = "") -> Figure:
    """Two panels: train/val loss, and train/val (and robust val) accuracy per epoch."""
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.2))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], label="validation")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.plot(epochs, [h["train_accuracy"] for h in history], label="train")
    ax_acc.plot(epochs, [h["val_accuracy"] for h in history], label="validation")
    if any("val_robust_accuracy" in h for h in history):
        ax_acc.plot(epochs, [h.get("val_robust_accuracy", float("nan")) for h in history],
                    label="validation (PGD)", linestyle="--")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def segmentation_examples_figure(images: Any, masks: Any, predictions: Any, classes: Sequence[str],
                                 title: str = "") -> Figure:
    """One row per image: the image, its ground truth and the predicted mask in the VOC colours,
    with a legend of the classes (ignored pixels in cream)."""
    from matplotlib.patches import Patch

    from robustcv.data.palette import class_colors, colorize, ignore_color

    rows = len(images)
    fig, axes = plt.subplots(rows, 3, figsize=(6.6, 2.1 * rows + 0.6), squeeze=False)
    for row, (image, mask, pred) in enumerate(zip(images, masks, predictions)):
        panels = (image.permute(1, 2, 0).squeeze(-1).numpy(), colorize(mask), colorize(pred))
        for ax, panel, name in zip(axes[row], panels, ("image", "ground truth", "prediction")):
            ax.imshow(panel, cmap="gray" if panel.ndim == 2 else None, vmin=0, vmax=1 if panel.ndim == 2 else None,
                      interpolation="nearest")
            ax.set_axis_off()
            ax.set_title(name if row == 0 else "", fontsize=9)
    colors = [tuple(c / 255 for c in rgb) for rgb in class_colors(len(classes)) + [ignore_color()]]
    handles = [Patch(color=c, label=n) for c, n in zip(colors, list(classes) + ["ignored"])]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(bottom=0.6 / (2.1 * rows + 0.6) + 0.05)
    return fig
