"""``robustcv list``: what robustcv knows (datasets, models, optimizers, augmentation, attacks, defenses)."""
from __future__ import annotations

import click

from robustcv.console import stdout, table
from robustcv.models.tv_generic import compact
from robustcv.tasks import Task
from robustcv.training.augment import POLICY_HELP
from robustcv.training.recipe import ADV_TRAIN, LOSSES, OPTIMIZERS, SCHEDULES


@click.command("list")
def list_command() -> None:
    """List datasets, models, recipes, attacks and defenses."""
    from attacks import list_attacks
    from defenses import list_defenses
    from robustcv.data import list_datasets
    from robustcv.evaluation.config import NATURAL_KINDS
    from robustcv.models import list_models
    from robustcv.models.registry import CATALOGS

    by_task = [(f"{kind} ({task.value})", ", ".join(lister(task=task)))
               for task in Task for kind, lister in (("datasets", list_datasets), ("models", list_models))]
    rows = [
        *[row for row in by_task if row[1]],
        *[(f"models ({label})", _catalog_line(label, len(list(c.names())))) for label, c in CATALOGS.items()],
        ("freeze plans", "full, head, last:N, staged:EPOCH"),
        ("optimizers", ", ".join(OPTIMIZERS)),
        ("schedules", ", ".join(SCHEDULES)),
        ("losses", ", ".join(LOSSES)),
        ("augmentation", "; ".join(f"{k}: {v}" for k, v in POLICY_HELP.items()) + "; plus --mixup/--cutmix"),
        ("adversarial training", ", ".join(ADV_TRAIN)),
        ("attacks", ", ".join(list_attacks())),
        ("natural sweeps", ", ".join(NATURAL_KINDS)),
        ("defenses", ", ".join(list_defenses())),
    ]
    stdout.print(table("robustcv knows", ("kind", "names"), rows))
    for label, catalog in CATALOGS.items():
        title = f"{label} classifiers: --model FAMILYVARIANT (e.g. resnet18, convnext_tiny)"
        stdout.print(table(title, ("family", "variants"), compact(list(catalog.names()))))


def _catalog_line(label: str, count: int) -> str:
    return (f"any of the {count} classifiers in {label}.models.list_models(), by name "
            f"(e.g. vgg19_bn, inception_v3, efficientnet_b2, vit_b_16), with a new head; table below")
