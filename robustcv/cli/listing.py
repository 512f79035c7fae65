"""``robustcv list``: what robustcv knows, every kind from its registry (tasks, datasets, models,
training losses, optimizers, schedules, adversarial training, attacks, protocols, attack losses,
natural transforms, defenses)."""
from __future__ import annotations

import click

from robustcv.console import stdout, table
from robustcv.models.tv_generic import compact
from robustcv.training.augment import POLICY_HELP
from robustcv.training import kinds


@click.command("list")
def list_command() -> None:
    """List datasets, models, recipes, attacks and defenses."""
    from robustcv.catalogues import ATTACK_LOSSES, ATTACKS, DEFENSES, NATURAL
    from robustcv.data import list_datasets
    from robustcv.models import list_models
    from robustcv.models.registry import CATALOGS
    from robustcv.protocols import PROTOCOLS
    from robustcv.tasks import list_tasks

    by_task = [(f"{kind} ({task})", ", ".join(lister(task=task)))
               for task in list_tasks() for kind, lister in (("datasets", list_datasets), ("models", list_models))]
    rows = [
        ("tasks", ", ".join(list_tasks())),
        *[row for row in by_task if row[1]],
        *[(f"models ({label})", _catalog_line(label, len(list(c.names())))) for label, c in CATALOGS.items()],
        ("freeze plans", "full, head, last:N, staged:EPOCH"),
        ("optimizers", ", ".join(kinds.OPTIMIZERS.names())),
        ("schedules", ", ".join(kinds.SCHEDULES.names())),
        ("losses", ", ".join(kinds.TRAINING_LOSSES.names())),
        ("augmentation", "; ".join(f"{k}: {v}" for k, v in POLICY_HELP.items()) + "; plus --mixup/--cutmix"),
        ("adversarial training", ", ".join(kinds.ADVERSARIAL_TRAINING.names())),
        ("attacks", ", ".join(ATTACKS.names())),
        ("protocols", ", ".join(_protocol(e) for e in PROTOCOLS.entries())),
        *[(f"attack losses ({task})", ", ".join(ATTACK_LOSSES.names(task))) for task in list_tasks()
          if ATTACK_LOSSES.names(task) != ATTACK_LOSSES.names()],
        ("natural sweeps", ", ".join(NATURAL.names())),
        ("defenses", ", ".join(_defense(e) for e in DEFENSES.entries())),
    ]
    stdout.print(table("robustcv knows", ("kind", "names"), rows))
    for label, catalog in CATALOGS.items():
        title = f"{label} classifiers: --model FAMILYVARIANT (e.g. resnet18, convnext_tiny)"
        stdout.print(table(title, ("family", "variants"), compact(list(catalog.names()))))


def _catalog_line(label: str, count: int) -> str:
    return (f"any of the {count} classifiers in {label}.models.list_models(), by name "
            f"(e.g. vgg19_bn, inception_v3, efficientnet_b2, vit_b_16), with a new head; table below")


def _protocol(entry) -> str:
    """``autoattack[:standard|plus|rand] (classification)``: a protocol, its versions and tasks."""
    versions = entry.meta["versions"]
    return entry.name + (f"[:{'|'.join(versions)}]" if versions else "") + f" ({', '.join(entry.tasks)})"


def _defense(entry) -> str:
    """``jpeg:QUALITY (int 1-95)``: a defense with its short form's parameter syntax."""
    return entry.name + (f":{entry.meta['syntax']}" if entry.meta["syntax"] else "")
