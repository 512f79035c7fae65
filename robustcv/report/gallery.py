"""The example gallery: clean image, amplified perturbation and adversarial image, with the
predictions on each; the PNGs are copied into the report's folder."""
from __future__ import annotations

from robustcv.report.context import NOT_MEASURED, Context
from robustcv.report.document import Block, Cell, Heading, Image, Table, Text
from robustcv.report.formatting import fmt_eps
from robustcv.report.loading import RunData, read_png
from robustcv.report.queries import run_task
from robustcv.results import GalleryItem, write_bytes_atomic

GALLERY_KINDS = ("clean", "perturbation", "adversarial")
LABEL_SET_NOTE = (" Multi-label classifiers: the true, clean and adversarial label sets, each prediction with the "
                  "share of its label decisions that are right.")


def gallery(ctx: Context) -> list[Block]:
    """One row per gallery example of every run."""
    blocks: list[Block] = [Heading("Example gallery", anchor="gallery")]
    items = [(run, f"run{r}_{g}", item) for r, run in enumerate(ctx.runs) for g, item in enumerate(run.results.gallery)]
    if not items:
        return blocks + [Text("Examples: " + NOT_MEASURED + ".", "note")]
    masks = [entry for entry in items if entry[2].truth_mask_path]
    if masks:
        blocks += _mask_gallery(ctx, masks)
    rows = [_gallery_row(ctx, run, stem, item) for run, stem, item in items if not item.truth_mask_path]
    if not rows:
        return blocks
    label_sets = any(run_task(run).gallery == "label-sets" for run, _, item in items if not item.truth_mask_path)
    blocks.append(Text("Clean image, the perturbation amplified to be visible, and the adversarial image, "
                       "with the predicted label and its confidence." + (LABEL_SET_NOTE if label_sets else "")))
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


def _mask_gallery(ctx: Context, entries: list) -> list[Block]:
    """Segmentation examples: images, true mask, and the predicted masks with their pixel accuracy."""
    rows = []
    for run, stem, item in entries:
        images = {kind: _gallery_image(ctx, run, f"{stem}_{kind}.png", path, f"{kind.replace('_', ' ')}")
                  for kind, path in (("clean", item.clean_path), ("truth_mask", item.truth_mask_path),
                                     ("clean_mask", item.clean_mask_path), ("perturbation", item.perturbation_path),
                                     ("adversarial", item.adversarial_path),
                                     ("adversarial_mask", item.adversarial_mask_path))}
        rows.append([run.name, f"{item.model} / {item.defense}", f"{item.attack} @ eps {fmt_eps(item.eps)}",
                     images["clean"], images["truth_mask"], images["clean_mask"], f"{item.clean_conf:.0%}",
                     images["perturbation"], images["adversarial"], images["adversarial_mask"], f"{item.adv_conf:.0%}"])
    return [Text("The images whose pixel accuracy the strongest attack lowered most: the clean image, the true mask "
                 "and the predicted one in the dataset's colours, then the amplified perturbation, the adversarial "
                 "image and its predicted mask; each with the share of valid pixels predicted right."),
            Table(["Run", "Model / defense", "Attack", "Clean", "True mask", "Clean prediction", "Pixels right",
                   "Perturbation (amplified)", "Adversarial", "Adversarial prediction", "Pixels right"], rows,
                  css="gallery")]


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
