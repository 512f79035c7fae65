"""``robustcv train``: train a model (skipped when a checkpoint with the same spec exists)."""
from __future__ import annotations

from typing import Any

import click

from robustcv.cli.options import (ConfigCommand, config_option, data_options, data_spec_from, model_options,
                                  model_spec_from, recipe_from, recipe_options, run_options, seeds_option)
from robustcv.cli.tables import print_training_summary
from robustcv.device import resolve_device


@click.command("train", cls=ConfigCommand)
@config_option
@data_options
@model_options
@recipe_options
@run_options
@click.option("--denoiser-for", type=click.Path(exists=True, file_okay=False), default=None,
              help="Instead of a classifier, train a denoiser defense for this checkpoint.")
@seeds_option
def train_command(**params: Any) -> None:
    """Train a model on a dataset; defaults: a small CNN on the embedded digits, offline."""
    if params["denoiser_for"]:
        from robustcv.cli.denoise import train_denoiser_command

        train_denoiser_command(params)
        return
    from robustcv import distributed
    from robustcv.service import train_if_absent

    world, device = distributed.setup(resolve_device(params["device"]))
    if params["seeds_text"] is not None:
        from robustcv.cli.seeds import train_seed_study

        train_seed_study(params, device)
        return
    result = train_if_absent(
        data_spec_from(params), model_spec_from(params), recipe_from(params),
        models_dir=params["models_dir"], device=device, force=params["force"], show_progress=not params["quiet"],
    )
    if world.main:
        print_training_summary(result)
