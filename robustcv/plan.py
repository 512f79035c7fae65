"""The one resolver: a :class:`~robustcv.request.Request` in, the run's ``EvalConfig`` out.

Every default (eps grid and headline, the task's attacks and sample count, ``none`` among the
defenses, the natural sweeps) and every check of a setting (targeting, defenses, sweeps, the grid,
attack names) lives here, for the CLI and the Python API alike. A refused setting is a
:class:`PlanError`: one line, naming the CLI option it came from so the CLI can point at its flag.
"""
from __future__ import annotations

from typing import Any

from robustcv.arguments import real_number, seed_number, text_value, text_values, whole_number
from robustcv.errors import UserError
from robustcv.evaluation.config import NATURAL_KINDS, NORMS, EvalConfig, check_config, resolve_eps_grid
from robustcv.protocols import ProtocolChoice, check_protocol_task, choose_protocol
from robustcv.request import HEADLINE, Request
from robustcv.tasks import get_task

ALL_CLASSES = 1 << 30  # a class count no targeting can exceed: checks what the task never runs


class PlanError(UserError):
    """A setting the run cannot take.

    Attributes:
        detail: what is wrong, as the CLI shows it after its option's name.
        option: the CLI option that sets it (``--eps``, ``--targeted``, ...).
    """

    def __init__(self, detail: str, option: str, text: str | None = None) -> None:
        super().__init__(text or detail)  # text: the whole line where the detail alone would not say which setting
        self.detail = detail
        self.option = option


def check_task_targeting(task: str, targeted: str) -> None:
    """Refuse a targeting ``task`` never runs, whatever its classes (before any training)."""
    problem = get_task(task).targeted_problem(targeted, num_classes=ALL_CLASSES)
    if problem:
        raise PlanError(f"--task {task}: {problem}", "--targeted")


def check_task_protocol(task: str, protocol: str) -> None:
    """Refuse a protocol ``task`` never runs, or an unknown one (before any training)."""
    try:
        check_protocol_task(protocol, task)
    except UserError as exc:
        raise PlanError(str(exc), "--protocol") from None


def sample_count(request: Request, task: str) -> int:
    """The samples to attack: ``request.n``, else the task's default count."""
    count = request.n if request.n is not None else get_task(task).default_samples
    if count < 1:
        raise PlanError(f"n must be at least 1, got {count}", "--n")
    return count


def resolve(request: Request, info: Any, task_settings: dict[str, Any] | None = None) -> EvalConfig:
    """The run's configuration, every default filled in, every setting checked.

    Args:
        request: what was asked.
        info: the model's ``DataInfo`` (its dataset picks the eps grid, its task the defaults).
        task_settings: the model's per-task settings (multi-label thresholds), for building the attacks.

    Returns:
        EvalConfig: what will run.

    Raises:
        PlanError: a setting that cannot run (UserError for an inconsistent grid or loop size).
    """
    check_request(request)
    eps, headline = eps_grid(request, info)
    natural = natural_sweeps(request.natural)
    defenses = defense_list(request.defenses)
    check_targeting(request.targeted, info)
    protocol = protocol_choice(request, info)
    attacks = list(protocol.attacks) if protocol else attack_list(request, info)
    config = EvalConfig(attacks=attacks, protocol=protocol.label if protocol else None, eps=eps,
                        headline_eps=headline, norm=request.norm,
                        steps=request.steps, step_size=request.step_size, rel_step_size=request.rel_step_size,
                        restarts=request.restarts, apgd_steps=request.apgd_steps, loss=request.attack_loss,
                        targeted=request.targeted, defenses=defenses, eot_samples=request.eot_samples,
                        natural=natural, n=sample_count(request, info.task), batch_size=request.batch_size,
                        seed=request.seed, save_adversarials=_save_eps(request.save_adversarials, headline))
    check_attacks(config, info, task_settings or {})
    return config


def check_request(request: Request) -> None:
    """Every setting of the right type and range, or one :class:`PlanError` naming it (the CLI's
    flags are typed by click; the Python API's arguments arrive as given)."""
    if request.attacks is not None and not request.attacks:
        raise PlanError("names no attack; e.g. fgsm,pgd", "--attack", "attacks: give at least one attack, e.g. fgsm,pgd")
    if request.eps is not None and not request.eps:
        raise PlanError("no budget given; e.g. 0,1/255,8/255", "--eps", "eps: give at least one budget, e.g. [0, 8/255]")
    if isinstance(request.norm, str) and request.norm not in NORMS:
        raise PlanError(f"unknown norm {request.norm!r}; choose from {', '.join(NORMS)}", "--norm",
                        f"norm {request.norm!r} is unknown; choose from {', '.join(NORMS)}")
    for name, check in _SETTING_CHECKS.items():
        value = getattr(request, name)
        if value is None or (name == "save_adversarials" and value == HEADLINE):
            continue
        try:
            check(value, name)
        except UserError as exc:
            raise PlanError(str(exc), "--" + _OPTION_NAMES.get(name, name).replace("_", "-")) from None


_SETTING_CHECKS: dict[str, Any] = {
    "task": text_value, "attack_loss": text_value, "norm": text_value, "targeted": text_value, "protocol": text_value,
    "attacks": text_values, "defenses": text_values, "natural": text_values,
    "eps": lambda v, name: [real_number(e, name, 0.0) for e in v],
    "headline_eps": lambda v, name: real_number(v, name, 0.0), "step_size": lambda v, name: real_number(v, name, 0.0),
    "save_adversarials": lambda v, name: real_number(v, name, 0.0),
    "rel_step_size": lambda v, name: real_number(v, name, 0.0, open_low=True),
    **{k: (lambda v, name: whole_number(v, name, 1)) for k in ("n", "steps", "restarts", "apgd_steps",
                                                               "eot_samples", "batch_size")},
    "seed": lambda v, name: seed_number(v, name),
}
_OPTION_NAMES = {"attacks": "attack", "defenses": "defense", "batch_size": "eval_batch_size"}


def eps_grid(request: Request, info: Any) -> tuple[list[float], float]:
    """The eps grid (0 first; default: the dataset's) and the headline eps, which must be on it."""
    given = None if request.eps is None else list(request.eps)
    eps, headline = resolve_eps_grid(info, request.norm, given, request.headline_eps)
    if headline not in eps:
        raise PlanError(f"{headline:.4g} is not on the eps grid {eps}", "--headline-eps",
                        f"headline eps {headline:.4g} is not on the eps grid {eps}")
    return eps, headline


def natural_sweeps(natural: tuple[str, ...] | None) -> list[str]:
    """The natural sweeps to run (default: all); an unknown one is refused."""
    kinds = list(NATURAL_KINDS) if natural is None else list(natural)
    unknown = set(kinds) - set(NATURAL_KINDS)
    if unknown:
        raise PlanError(f"unknown natural sweep {sorted(unknown)}; choose from {', '.join(NATURAL_KINDS)}",
                        "--natural")
    return kinds


def defense_list(defenses: tuple[str, ...] | None) -> list[str]:
    """The defenses in the order given, once each, ``none`` first unless listed; each one parsed."""
    from defenses import parse_defense

    specs = list(dict.fromkeys(defenses or ("none",)))
    if "none" not in specs:
        specs.insert(0, "none")
    for spec in specs:
        try:
            parse_defense(spec)
        except ValueError as exc:
            raise PlanError(str(exc), "--defense", f"defense {spec!r}: {exc}") from None
    return specs


def check_targeting(targeted: str, info: Any) -> None:
    """Refuse a targeting the model's task cannot run with its classes."""
    problem = get_task(info.task).targeted_problem(targeted, info.num_classes)
    if problem:
        raise PlanError(problem, "--targeted", f"targeted={problem}" if problem.startswith("'") else problem)


def protocol_choice(request: Request, info: Any) -> ProtocolChoice | None:
    """The protocol asked (None: none); refused beside ``--attack``, or for a model it cannot run."""
    if request.protocol is None:
        return None
    check_protocol_request(request.protocol, request.attacks, request.targeted)
    try:
        return choose_protocol(request.protocol, info, request.norm)
    except UserError as exc:
        raise PlanError(str(exc), "--protocol") from None


def check_protocol_request(protocol: str, attacks: tuple[str, ...] | None, targeted: str = "none") -> None:
    """Refuse ``--protocol`` beside ``--attack`` (a protocol is its own, fixed, list of attacks) or
    ``--targeted`` (the published protocols are untargeted)."""
    if attacks is not None:
        raise PlanError(f"protocol '{protocol}' runs its own attacks; drop --attack {','.join(attacks)} "
                        "(or drop --protocol)", "--protocol")
    if targeted != "none":
        raise PlanError(f"protocol '{protocol}' is untargeted; drop --targeted {targeted} (or drop --protocol)",
                        "--protocol")


def attack_list(request: Request, info: Any) -> list[str]:
    """The attacks asked, else the task's defaults for its class count and targeting."""
    if request.attacks is not None:
        return list(request.attacks)
    defaults = get_task(info.task).default_attacks(info.num_classes, request.targeted, request.norm)
    return [spec for spec in defaults if has_step_for(spec, request.norm)]  # --norm l1: no FGSM, no PGD


def has_step_for(spec: str, norm: str) -> bool:
    """Whether the attack ``spec`` declares steps built for ``norm`` (FGSM and PGD: L-inf and L2 only)."""
    from robustcv.catalogues import ATTACKS

    entry, _ = ATTACKS.parse(spec)
    return norm in entry.meta["declares"].norms


def check_attacks(config: EvalConfig, info: Any, task_settings: dict[str, Any]) -> None:
    """Refuse a bad grid or attack name now, before the stage spends its time."""
    from robustcv.evaluation.attacking import build_attack

    check_config(config)
    task = get_task(info.task)
    if config.loss is not None:
        try:
            task.checked_loss(config.loss)
        except UserError as exc:
            raise PlanError(str(exc), "--attack-loss") from None
    objective = task.objective(info, **task_settings)
    for name in config.attacks:
        check_attack_offered(name, task)
        build_attack(name, config, objective)


def check_attack_offered(spec: str, task: Any) -> None:
    """Refuse, in one line naming what it offers, an attack the task does not take."""
    from robustcv.catalogues import ATTACKS

    entry, _ = ATTACKS.parse(spec)
    problem = task.attack_problem(entry.name)
    if problem:
        raise PlanError(problem, "--attack")


def _save_eps(value: float | str | None, headline: float) -> float | None:
    return headline if value == HEADLINE else value
