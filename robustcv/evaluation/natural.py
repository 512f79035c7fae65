"""Natural-transformation sweeps (shift, rotation, noise, blur, brightness) as tidy records."""
from __future__ import annotations

import time

import torch

from robustcv.metrics.segmentation import worst_by_pixel_accuracy
from robustcv.metrics.segmentation import image_confusions, miou, pixel_accuracy
from robustcv.evaluation.config import EvalConfig
from robustcv.results import Record
from robustcv.tasks import task_of


def natural_records(model_name: str, model, samples, objective, config: EvalConfig,
                    device: torch.device) -> list[Record]:
    """Accuracy at each value of each transform's grid, and the worst case over the grid.

    Records use attack ``natural:<kind>`` with the transform's parameter in ``eps``; the worst
    case (a sample counts only if correct at every value) has metric ``worst_case_accuracy``.
    """
    from attacks.natural import get_natural, natural_sweep

    if task_of(objective).label_moves_with_image:
        return [record for kind in config.natural
                for record in segmentation_natural_records(model_name, model, samples, objective, kind, config, device)]
    records: list[Record] = []
    x, y = samples.x.to(device), samples.y.to(device)
    for kind in config.natural:
        transform = get_natural(kind)
        start = time.perf_counter()
        result = natural_sweep(model, x, y, transform, transform.default_grid,
                               generator=torch.Generator(device=device).manual_seed(config.seed),
                               correct=objective.correct)
        seconds = round((time.perf_counter() - start) / max(1, len(result.values)), 4)
        base = dict(model=model_name, defense="none", attack=f"natural:{kind}", adaptive=False, n=len(y))
        for value, accuracy in zip(result.values, result.accuracy):
            records.append(Record(**base, eps=float(value), metric="robust_accuracy",
                                  value=round(float(accuracy), 6), seconds=seconds))
        records.append(Record(**base, eps=float(max(result.values)), metric="worst_case_accuracy",
                              value=round(float(result.worst_case_accuracy), 6), seconds=seconds))
    return records


def segmentation_natural_records(model_name: str, model, samples, objective, kind: str, config: EvalConfig,
                                 device: torch.device) -> list[Record]:
    """A segmenter's ``miou`` and ``pixel_accuracy`` at each value of one transform's grid.

    Geometric transforms move the label masks with the images (nearest; uncovered pixels are
    ignored); of a value's variants (the four shift directions, ± an angle) each image keeps the
    one it does worst on, by pixel accuracy.
    """
    from attacks.frozen import eval_frozen
    from attacks.natural import get_natural

    transform = get_natural(kind)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    base = dict(model=model_name, defense="none", attack=f"natural:{kind}", adaptive=False, n=len(samples.y))
    records = []
    with eval_frozen(model), torch.inference_mode():
        for value in transform.default_grid:
            start = time.perf_counter()
            worst = _worst_variant(model, samples, objective, transform, value, generator, config.batch_size, device)
            seconds = round(time.perf_counter() - start, 4)
            for metric, fn in (("miou", miou), ("pixel_accuracy", pixel_accuracy)):
                records.append(Record(**base, eps=float(value), metric=metric, value=round(float(fn(worst.sum(0))), 6),
                                      seconds=seconds))
    return records


def _worst_variant(model, samples, objective, transform, value, generator, batch_size: int,
                   device: torch.device) -> torch.Tensor:
    """Per image, the confusion matrix ``[N, K, K]`` of the variant with the fewest right pixels."""
    per_variant = []
    for variant in transform.variants(value):
        parts = []
        for i in range(0, len(samples.y), batch_size):
            x = samples.x[i:i + batch_size].to(device)
            y = samples.y[i:i + batch_size].to(device)
            logits = model(transform.apply(x, variant, generator))
            moved = transform.apply_mask(y, variant, objective.ignore_index if objective.ignore_index is not None else -1)
            parts.append(image_confusions(logits, moved, logits.shape[1], objective.ignore_index))
        per_variant.append(torch.cat(parts))
    return worst_by_pixel_accuracy(torch.stack(per_variant))
