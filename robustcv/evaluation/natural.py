"""Natural-transformation sweeps (shift, rotation, noise, blur, brightness) as tidy records."""
from __future__ import annotations

import time

import torch

from robustcv.evaluation.config import EvalConfig
from robustcv.results import Record


def natural_records(model_name: str, model, samples, objective, config: EvalConfig,
                    device: torch.device) -> list[Record]:
    """Accuracy at each value of each transform's grid, and the worst case over the grid.

    Records use attack ``natural:<kind>`` with the transform's parameter in ``eps``; the worst
    case (a sample counts only if correct at every value) has metric ``worst_case_accuracy``.
    """
    from attacks.natural import get_natural, natural_sweep

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
