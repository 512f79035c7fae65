"""The registries of training's vocabularies: losses, optimizers, schedules, adversarial training.

Each name is a typed :class:`robustcv.registry.Entry` whose builder is the name itself (the
trainer builds the thing) and whose summary says what it is; the recipe validates against these
registries and ``robustcv list`` shows them.
"""
from __future__ import annotations

from robustcv.registry import Registry

TRAINING_LOSSES: Registry[str] = Registry("training loss")
OPTIMIZERS: Registry[str] = Registry("optimizer")
SCHEDULES: Registry[str] = Registry("schedule")
ADVERSARIAL_TRAINING: Registry[str] = Registry("adversarial-training kind")


def _register(registry: Registry[str], summaries: dict[str, str],
              tasks: dict[str, tuple[str, ...]] | None = None) -> None:
    for name, summary in summaries.items():
        registry.register(name, name, summary=summary, tasks=(tasks or {}).get(name, ()))


_register(TRAINING_LOSSES, {"ce": "cross-entropy (sigmoid BCE for multi-label)",
                            "focal": "focal loss (Lin et al. 2017), --focal-gamma"})
_register(OPTIMIZERS, {"sgd": "SGD with --momentum, --nesterov", "adam": "Adam", "adamw": "AdamW (decoupled decay)",
                       "nadam": "NAdam", "rmsprop": "RMSprop with --momentum", "adagrad": "Adagrad"})
_register(SCHEDULES, {"cosine": "cosine decay", "step": "x --gamma every --step-size epochs",
                      "plateau": "x --gamma when the monitored value stalls", "onecycle": "one-cycle",
                      "constant": "constant"})
_register(ADVERSARIAL_TRAINING,
          {"none": "standard training", "fgsm-rs": "FGSM with a random start (Wong et al. 2020)",
           "pgd-at": "PGD adversarial training (Madry et al. 2018)", "segpgd-at": "SegPGD adversarial training",
           "trades": "TRADES (Zhang et al. 2019), --trades-beta",
           "distillation": "defensive distillation, --distill-temperature"},
          tasks={"segpgd-at": ("segmentation",)})
