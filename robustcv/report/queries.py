"""Pure questions asked of loaded runs: curves, headline numbers, verdicts, per-class tables.

Nothing here draws or writes; plots and both output formats are built from these answers, so
the numbers in the figures, the HTML and the Markdown are the same numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from robustcv.attack_failures import inconclusive_reason
from robustcv.report.formatting import fmt_eps, fmt_norm_eps
from robustcv.report.loading import RunData
from robustcv.results import Record
from robustcv.tasks import DEFAULT_TASK, TaskDefinition, get_task

WORST = "worst-case"
NATURAL_PREFIX = "natural:"


@dataclass(frozen=True)
class Series:
    """One plotted curve: ``y`` against ``x`` for a (run, model, defense, attack, adaptive)."""

    label: str
    run: str
    model: str
    defense: str
    attack: str
    adaptive: bool
    x: tuple[float, ...]
    y: tuple[float, ...]

    @property
    def naive(self) -> bool:
        """A non-adaptive attack on a defense: the figure that must not be trusted alone."""
        return self.defense != "none" and not self.adaptive and not is_natural(self.attack)

    @property
    def mode(self) -> str:
        if self.defense == "none":
            return "—"
        return "adaptive" if self.adaptive else "naive"


def is_natural(attack: str) -> bool:
    return attack.startswith(NATURAL_PREFIX)


def run_task(run: RunData) -> TaskDefinition:
    """The definition of the task the run evaluated (runs that name none: classification)."""
    return get_task(run.results.run.get("task") or DEFAULT_TASK)


def main_metric(run: RunData) -> str:
    """The record metric of the run's robust figure, as its task names it (``robust_accuracy``, ``miou``)."""
    return run_task(run).robust_metric


def contributes(run: RunData, section: str) -> bool:
    """Whether the run's task adds the report section ``section`` (``TaskDefinition.report_sections``)."""
    return section in run_task(run).report_sections


def common(runs: Iterable[RunData], attribute: str, default: str) -> str:
    """The tasks' ``attribute`` when every run's task gives the same one, else ``default``."""
    values = {getattr(run_task(run), attribute) for run in runs}
    return values.pop() if len(values) == 1 else default


def metric_label(runs: Iterable[RunData]) -> str:
    """What the headline numbers measure, for headings: the tasks' ``figure_label`` (``mIoU``,
    ``exact match``) when every run's task says the same, else ``accuracy``."""
    return common(runs, "figure_label", "accuracy")


def groups(run: RunData) -> list[tuple[str, str]]:
    """(model, defense) pairs in the order the records first mention them."""
    seen: dict[tuple[str, str], None] = {}
    for record in run.results.records:
        seen.setdefault((record.model, record.defense), None)
    return list(seen)


def _curves(run: RunData, metric: str, natural: bool) -> dict[tuple, list[Record]]:
    curves: dict[tuple, list[Record]] = {}
    for r in run.results.records:
        if r.metric == metric and r.cls is None and is_natural(r.attack) == natural:
            curves.setdefault((r.model, r.defense, r.attack, bool(r.adaptive)), []).append(r)
    return curves


def curve_series(runs: list[RunData], natural: bool = False, metric: str | None = None) -> list[Series]:
    """Every attack curve (or natural-transform curve) of every run, labelled for a shared legend;
    of ``metric`` (default: each run's :func:`main_metric`).

    Labels read ``run / model / defense / attack [mode]``; parts that are the same for every
    curve are left out, except the attack.
    """
    raw = []
    for run in runs:
        for (model, defense, attack, adaptive), records in _curves(run, metric or main_metric(run), natural).items():
            points = sorted({r.eps: r.value for r in records}.items())
            raw.append((run.name, model, defense, attack, adaptive,
                        tuple(p[0] for p in points), tuple(p[1] for p in points)))
    varying = [len({item[i] for item in raw}) > 1 for i in range(3)]
    series = []
    for run_name, model, defense, attack, adaptive, xs, ys in raw:
        parts = [p for p, keep in zip((run_name, model, defense), varying) if keep]
        shown = attack[len(NATURAL_PREFIX):] if natural else attack
        if defense != "none" and not natural:
            shown += " (adaptive)" if adaptive else " (naive)"
        label = " / ".join(parts + [shown])
        series.append(Series(label, run_name, model, defense, attack, adaptive, xs, ys))
    return series


def lookup(run: RunData, model: str, defense: str, metric: str, eps: float | None = None,
           attack: str | None = None, adaptive: bool | None = None, cls: str | None = None) -> list[Record]:
    """Records matching every given field (eps compared to 1e-9)."""
    return [r for r in run.results.records
            if r.model == model and r.defense == defense and r.metric == metric and r.cls == cls
            and (eps is None or abs(r.eps - eps) < 1e-9) and (attack is None or r.attack == attack)
            and (adaptive is None or bool(r.adaptive) == adaptive)]


def clean_accuracy(run: RunData, model: str, defense: str) -> float | None:
    """The recorded clean accuracy, else the eps-0 point of any attack curve."""
    for metric in ("clean_accuracy", "clean_miou"):
        found = lookup(run, model, defense, metric)
        if found:
            return found[0].value
    at_zero = [r for r in lookup(run, model, defense, main_metric(run), eps=0.0) if not is_natural(r.attack)]
    return max(r.value for r in at_zero) if at_zero else None


@dataclass(frozen=True)
class Headline:
    """The summary's numbers for one (run, model, defense)."""

    run: str
    model: str
    defense: str
    eps: float | None
    clean: float | None
    robust: float | None
    attack: str            # the strongest single attack at the headline eps ("" if none)
    fooled: float | None   # fraction of clean-correct samples fooled
    worst_case: bool       # robust comes from the per-sample worst case
    naive_robust: float | None  # lowest robust accuracy under naive attacks only (defenses)
    metric: str = "robust_accuracy"  # what clean and robust measure (``miou`` for segmenters)
    clean_ci: tuple[float, float] | None = None   # 95 % intervals, where results.json records them
    robust_ci: tuple[float, float] | None = None
    n: int | None = None  # samples behind the robust figure
    norm: str = "linf"  # the threat model the eps measures


def headline_eps(run: RunData) -> float | None:
    """The run's headline eps; when no attack was measured there, the largest eps measured
    (what the evaluator falls back to for a headline off the grid)."""
    measured = sorted({r.eps for r in run.results.records if r.metric == main_metric(run) and r.cls is None
                       and not is_natural(r.attack)})
    wanted = run.headline_eps
    if wanted is not None and any(abs(e - wanted) < 1e-9 for e in measured):
        return wanted
    return measured[-1] if measured else wanted


def cascade_steps(run: RunData) -> list[str]:
    """The run's attacks that ran as cascade steps (their curves are cumulative worst cases)."""
    config = run.results.run.get("config", {})
    attacks, cascade = list(config.get("attacks", [])), set(config.get("cascade", []))
    return [a for i, a in enumerate(attacks) if i > 0 and a.split("(")[0] in cascade]


def cascade_chain(run: RunData, attack: str) -> list[str]:
    """The attacks up to ``attack`` when it is a cascade step, else ``[]``."""
    if attack not in cascade_steps(run):
        return []
    attacks = list(run.results.run["config"]["attacks"])
    return attacks[: attacks.index(attack) + 1]


def protocol(run: RunData) -> str | None:
    """The named protocol whose attack produced the run's numbers, in words (``AutoAttack (standard,
    L∞)``), or None when the attacks were chosen one by one."""
    config = run.results.run.get("config")
    value = config.get("protocol") if isinstance(config, dict) else None
    return str(value) if value else None


def headline(run: RunData, model: str, defense: str) -> Headline:
    """Clean accuracy, robust accuracy at the headline eps, and who did the damage."""
    eps, metric = headline_eps(run), main_metric(run)
    clean = clean_accuracy(run, model, defense)
    clean_found = lookup(run, model, defense, "clean_accuracy") or lookup(run, model, defense, "clean_miou")
    at_eps = [r for r in lookup(run, model, defense, metric, eps=eps) if not is_natural(r.attack)] \
        if eps is not None else []
    worst = [r for r in at_eps if r.attack == WORST]
    singles = sorted((r for r in at_eps if r.attack != WORST), key=lambda r: r.value)
    chosen = min(worst, key=lambda r: r.value) if worst else (singles[0] if singles else None)
    robust = chosen.value if chosen else None
    attack = ""
    if singles:
        best = singles[0]
        attack = best.attack.upper() if best.attack in ("fgsm", "pgd") else best.attack
        chain = cascade_chain(run, best.attack)
        if chain:  # a cascade step's curve is cumulative: credit the whole chain
            attack = " → ".join(chain)
        if defense != "none":
            attack = ("adaptive " if best.adaptive else "naive ") + attack
    naive = [r.value for r in singles if defense != "none" and not r.adaptive]
    return Headline(run.name, model, defense, eps, clean, robust, attack,
                    _fooled(run, model, defense, eps, worst, clean, robust), bool(worst),
                    min(naive) if naive else None, metric, clean_found[0].interval if clean_found else None,
                    chosen.interval if chosen else None, chosen.n if chosen else None,
                    str(run.results.run.get("norm", "linf")))


def _fooled(run: RunData, model: str, defense: str, eps: float | None, worst: list[Record],
            clean: float | None, robust: float | None) -> float | None:
    targeted = str(run.results.run.get("config", {}).get("targeted", "none")) != "none"
    # Targeted: success = target hits, not errors; segmenters: the relative drop of mIoU (an
    # image is rarely fooled whole).
    if worst and eps is not None and not targeted and main_metric(run) == "robust_accuracy":
        rates = lookup(run, model, defense, "attack_success_rate", eps=eps, attack=WORST)
        if rates:
            return max(r.value for r in rates)
    if clean and robust is not None:
        return max(0.0, 1.0 - robust / clean)
    return None


def verdict(h: Headline, failed_checks: int = 0, blocking: Sequence[str] = (), indicators: Sequence[str] = ()) -> str:
    """One line a reader can act on, e.g. ``not robust: PGD fools 98% at eps 0.1``.

    ``blocking``: the names of failed checks that leave the figures without evidence (too few
    samples, non-finite outputs, a model no better than chance): then no verdict is given.
    ``indicators``: the indicators of attack failure that fired (Pintor et al. 2022): the attacks
    may have failed, so the verdict is "inconclusive" and says why in plain words.
    """
    if blocking:
        return f"inconclusive (failed: {'; '.join(blocking)}): these figures support no verdict"
    if h.robust is None or h.eps is None:
        return "not measured: no attack at the headline eps"
    if indicators:
        return (f"inconclusive: {inconclusive_reason(list(dict.fromkeys(indicators)))} — the robust figure "
                f"{h.robust:.3g} at {fmt_norm_eps(h.norm, h.eps)} may be too high; a stronger or adaptive attack is needed")
    who = h.attack or "the attack"
    where = f"at {fmt_norm_eps(h.norm, h.eps)}"
    fooled = h.fooled if h.fooled is not None else 0.0
    if h.metric == "miou":
        return _segmentation_verdict(h, who, where, fooled, failed_checks)
    if fooled >= 0.5:
        line = f"not robust: {who} fools {fooled:.0%} {where}"
    elif fooled >= 0.1:
        line = f"partly robust: {who} fools {fooled:.0%} {where}"
    else:
        line = f"robust {where}: the strongest attack ({who}) fools {fooled:.0%}"
    if h.naive_robust is not None and h.naive_robust - h.robust > 0.05:
        line += f"; naive attacks alone would claim {h.naive_robust:.0%} robust accuracy"
    if failed_checks:
        line += f"; {failed_checks} sanity check(s) failed, treat with suspicion"
    return line


def _segmentation_verdict(h: Headline, who: str, where: str, drop: float, failed_checks: int) -> str:
    """A segmenter's verdict from the relative loss of mIoU under the worst case."""
    cut = f"mIoU {h.clean:.2f} → {h.robust:.2f} {where} (−{drop:.0%}; strongest: {who})" if h.clean else ""
    line = ("not robust: " if drop >= 0.5 else "partly robust: " if drop >= 0.1 else "robust: ") + cut
    if failed_checks:
        line += f"; {failed_checks} sanity check(s) failed, treat with suspicion"
    return line


def class_values(run: RunData, model: str, defense: str, eps: float) -> tuple[str, dict[str, float]]:
    """Per-class robust accuracy (a segmenter's IoU, a multi-label classifier's flip rate) at
    ``eps`` for the worst case (else the strongest attack)."""
    wanted = run_task(run).class_metric
    records = [r for r in run.results.records
               if r.metric == wanted and r.model == model and r.defense == defense
               and r.cls is not None and abs(r.eps - eps) < 1e-9 and not is_natural(r.attack)]
    if not records:
        return "", {}
    by_attack: dict[str, dict[str, float]] = {}
    for r in records:
        key = r.attack + ("" if defense == "none" else (" (adaptive)" if r.adaptive else " (naive)"))
        by_attack.setdefault(WORST if r.attack == WORST else key, {})[str(r.cls)] = r.value
    if WORST in by_attack:
        return WORST, by_attack[WORST]
    attack = min(by_attack, key=lambda a: sum(by_attack[a].values()) / len(by_attack[a]))
    return attack, by_attack[attack]


def weaker_than_pgd(series: list[Series], attack: str = "segpgd") -> list[str]:
    """Where ``attack``'s curve lies above PGD's in the same run, model, defense and mode (SegPGD
    should be at least as strong; the worst case covers it either way)."""
    notes = []
    for s in series:
        if s.attack != attack:
            continue
        pgd = next((p for p in series if p.attack == "pgd" and (p.run, p.model, p.defense, p.adaptive)
                    == (s.run, s.model, s.defense, s.adaptive)), None)
        if pgd is None:
            continue
        reference = dict(zip(pgd.x, pgd.y))
        above = [x for x, y in zip(s.x, s.y) if x in reference and y > reference[x] + 1e-9]
        if above:
            notes.append(f"{s.label}: above PGD at eps {', '.join(fmt_eps(x) for x in above)}")
    return notes


def failed_checks(runs: Iterable[RunData]):
    """(run, check) for every sanity check that failed."""
    return [(run, c) for run in runs for c in run.results.sanity_checks if not c.passed]


def concerns(check, h: Headline) -> bool:
    """Whether a check applies to a summary row (an empty model or defense means every one)."""
    return check.model in ("", h.model) and check.defense in (h.defense, "")
