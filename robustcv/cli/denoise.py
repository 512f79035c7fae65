"""``robustcv train --denoiser-for CHECKPOINT``: train a learned denoiser defense for a model."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from robustcv.checkpoint import load_model
from robustcv.console import stdout, table
from robustcv.data import DataSpec, as_tensors, get_dataset
from robustcv.device import resolve_device
from robustcv.evaluation.config import default_eps_grid
from robustcv.outputs import OutputKind, claim_output, output_kind
from robustcv.training.fitting import seed_everything


def train_denoiser_command(params: dict[str, Any]) -> Path:
    """Train (or find) a denoiser for ``params['denoiser_for']`` on that model's training split.

    The attack budget is ``--train-eps`` when given, else the dataset's headline eps; epochs,
    learning rate, batch size and seed come from the recipe flags. The denoiser is written to
    ``<models-dir>/<model name>-denoiser-eps<eps>`` and skipped when already there (``--force``
    retrains). Use it with ``robustcv attack --defense denoiser:PATH``.
    """
    from defenses import save_denoiser, train_denoiser

    device = resolve_device(params["device"])
    model, meta = load_model(params["denoiser_for"], device=device)
    splits = get_dataset(meta.data)
    eps = params["train_eps"] or default_eps_grid(splits.info, "linf")[1]
    out = Path(params["models_dir"]) / f"{meta.name}-denoiser-eps{eps:g}"
    if (out / "denoiser.safetensors").is_file() and output_kind(out) is OutputKind.DENOISER and not params["force"]:
        stdout.print(f"denoiser already trained, nothing to do: {out}")
        return out
    # Owned like every output: refused if the folder holds other files, locked, built in staging.
    with claim_output(out, OutputKind.DENOISER, force=True, option="--models-dir",
                      protect={"the checkpoint": Path(params["denoiser_for"])}) as output:
        stdout.print(f"no denoiser for {meta.name} at eps {eps:g} yet: training one ({params['epochs']} epochs)")
        seed_everything(params["seed"])
        x, y = as_tensors(splits.train)
        with stdout.status(f"training a denoiser for {meta.name} at eps {eps:g}"):
            denoiser = train_denoiser(model, (x.to(device), y.to(device)), eps=eps, epochs=params["epochs"],
                                      lr=params["lr"], batch_size=params["batch_size"], seed=params["seed"])
        with output.staging() as staging:
            save_denoiser(denoiser.cpu(), staging)
    rows = [(str(h["epoch"]), h["loss"], h["adv_mse"]) for h in denoiser.history]
    stdout.print(table("denoiser training", ("epoch", "loss", "adversarial MSE"), rows))
    stdout.print(f"trained: {out}  (use it with: robustcv attack --defense none,denoiser:{out})")
    return out
