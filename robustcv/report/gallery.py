"""The example gallery: clean image, amplified perturbation and adversarial image, with the
predictions on each; the PNGs are copied into the report's folder."""
from __future__ import annotations

from robustcv.report.context import NOT_MEASURED, Context
from robustcv.report.document import Block, Cell, Heading, Image, Table, Text
from robustcv.report.formatting import fmt_eps
from robustcv.report.loading import RunData, read_png
from robustcv.results import GalleryItem, write_bytes_atomic

GALLERY_KINDS = ("clean", "perturbation", "adversarial")


def gallery(ctx: Context) -> list[Block]:
    """One row per gallery example of every run."""
    blocks: list[Block] = [Heading("Example gallery", anchor="gallery")]
    rows = [_gallery_row(ctx, run, f"run{r}_{g}", item)
            for r, run in enumerate(ctx.runs) for g, item in enumerate(run.results.gallery)]
    if not rows:
        return blocks + [Text("Examples: " + NOT_MEASURED + ".", "note")]
    blocks.append(Text("Clean image, the perturbation amplified to be visible, and the adversarial image, "
                       "with the predicted label and its confidence."))
    blocks.append(Table(["Run", "Model / defense", "Attack", "True label", "Clean", "Clean prediction",
                         "Perturbation (amplified)", "Adversarial", "Adversarial prediction"], rows,
                        css="gallery"))
    return blocks


def _gallery_row(ctx: Context, run: RunData, stem: str, item: GalleryItem) -> list[Cell]:
    paths = (item.clean_path, item.perturbation_path, item.adversarial_path)
    images = [_gallery_image(ctx, run, f"{stem}_{kind}.png", path, f"{kind} image")
              for kind, path in zip(GALLERY_KINDS, paths)]
    return [run.name, f"{item.model} / {item.defense}", f"{item.attack} @ eps {fmt_eps(item.eps)}",
            item.label, images[0], _prediction(item.clean_pred, item.clean_conf),
            images[1], images[2], _prediction(item.adv_pred, item.adv_conf)]


def _prediction(label: str, confidence: float | None) -> str:
    if isinstance(confidence, (int, float)):
        return f"{label} ({confidence:.0%})"
    return str(label)


def _gallery_image(ctx: Context, run: RunData, name: str, relative: str, alt: str) -> Cell:
    payload = read_png(run, relative)
    if payload is None:
        return "image missing"
    path = ctx.out_dir / "gallery" / name
    write_bytes_atomic(path, payload)
    return Image(path, alt, width=84, pixelated=True)
