"""Sanity checks of design rule 6: part of the result, printed loudly in the report when failed."""
from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch import nn

from attacks.objectives import Objective
from robustcv.evaluation.config import EvalConfig, pgd_step_size, sanity_eps
from robustcv.evaluation.evidence import evidence_checks
from robustcv.evaluation.indicators import indicator_checks
from robustcv.evaluation.masking import Probe, masking_checks, zero_gradient_check
from robustcv.evaluation.outcome import Outcome, worst_case
from robustcv.evaluation.threat import judged_elsewhere
from robustcv.results import SanityCheck
from robustcv.tasks import task_of
from robustcv.inference import predict

SANITY_SAMPLES = 200  # the independent PGD runs of the checks use the first samples only
BOUND_TOLERANCE = 1e-5
RANDOMIZED_TOLERANCE = 0.05  # attacks on a randomized defense follow random gradients
# Two attacks fool different samples; an adaptive attack within one point (or one sample) of the
# naive one on some eps is not broken (the reported figure is the per-sample worst case anyway).
ADAPTIVE_TOLERANCE = 0.01


def sanity_checks(model_name: str, model: nn.Module, runs: Sequence, samples, objective: Objective,
                  config: EvalConfig, device: torch.device) -> list[SanityCheck]:
    """Every rule-7 check: the evidence checks, the outcomes' checks, a very-large-eps and a more-steps PGD run."""
    first = samples.head(SANITY_SAMPLES)
    targeted = first.target is not None
    checks = evidence_checks(model_name, model, runs, samples, objective, config.batch_size, device)
    checks.append(large_eps_check(model_name, model, first.x, first.y, objective, config, device))
    for run in runs:
        clean = run.clean_score()
        checks += outcome_checks(model_name, run.spec, run.outcomes, clean, run.worst, run.randomized,
                                 targeted=targeted)
        checks.append(more_steps_check(model_name, run.spec, run.strongest_attack_model, run.judge, first, objective,
                                       config, device, tol=RANDOMIZED_TOLERANCE if run.randomized else 0.0,
                                       early_stop=not run.randomized))
        probe = Probe(model_name, run.spec, run.strongest_attack_model, run.judge, first.x, first.y,
                      run.worst.sample_scores(config.headline_index)[:SANITY_SAMPLES], objective, config, device)
        # Randomized defenses are judged by noisy draws, the probes would mostly measure noise; a
        # targeted run does not try to maximize errors, so untargeted probes would always beat it.
        if run.randomized or targeted:
            checks.append(zero_gradient_check(probe))
            continue
        checks += masking_checks(probe)
        if task_of(objective).class_checks:
            strongest = next((t for t in run.threats if t.adaptive), run.threats[0])
            checks += indicator_checks(probe, transfer=run.strongest_attack_model is not run.judge,
                                       early_stop=not judged_elsewhere(strongest))
    return checks


def outcome_checks(model: str, defense: str, outcomes: Sequence[Outcome], clean_acc: float,
                   worst: Outcome, randomized: bool, targeted: bool = False) -> list[SanityCheck]:
    """Checks that need only the measured outcomes of one defense."""
    tol = RANDOMIZED_TOLERANCE if randomized else 0.0
    checks = [_bounds(model, defense, outcomes), _eps_zero(model, defense, worst, clean_acc)]
    # Checked on the threat models that count (undefended, adaptive). Naive PGD on a defense is
    # known to lose to FGSM at times: transferred, it overfits its surrogate; with a single random
    # draw per step, it follows noise (the reasons for BPDA and EOT).
    counted = [o for o in outcomes if o.adaptive or defense == "none"]
    checks += _pgd_vs_fgsm(model, defense, counted, tol, targeted)
    if defense != "none":
        checks.append(_adaptive_vs_naive(model, defense, outcomes, max(tol, ADAPTIVE_TOLERANCE)))
    return checks


def _acc(outcome: Outcome) -> list[float]:
    return outcome.scores()


def _bounds(model: str, defense: str, outcomes: Sequence[Outcome]) -> SanityCheck:
    worst = max(o.max_violation for o in outcomes)
    return SanityCheck("perturbations within eps and [0, 1]", worst <= BOUND_TOLERANCE,
                       f"largest violation {worst:.2e} (tolerance {BOUND_TOLERANCE:.0e})", model, defense,
                       {"max_violation": worst})


def _eps_zero(model: str, defense: str, worst: Outcome, clean_acc: float) -> SanityCheck:
    # Exact even for randomized defenses: their judge uses the same draws for clean and eps 0.
    at_zero = worst.scores()[0] if worst.eps[0] == 0 else None
    passed = at_zero is None or abs(at_zero - round(clean_acc, 6)) <= 1e-9  # scores carry 6 decimals
    shown = "not on the grid" if at_zero is None else f"{at_zero:.4f}"
    return SanityCheck("robust accuracy at eps 0 equals clean accuracy", passed,
                       f"eps 0: {shown}, clean: {clean_acc:.4f}", model, defense,
                       {"eps0": at_zero if at_zero is None else round(at_zero, 6), "clean": round(clean_acc, 6)})


def _hits(outcome: Outcome) -> list[float]:
    return [round(float(h.float().mean()), 6) for h in outcome.hit_target]


def _pgd_fgsm_pairs(outcomes: Sequence[Outcome]) -> Iterator[tuple[Outcome, Outcome]]:
    """Each PGD outcome with the FGSM outcome of the same threat model."""
    for pgd in (o for o in outcomes if o.attack.split("+")[0] == "pgd"):
        fgsm = next((o for o in outcomes if o.attack.split("+")[0] == "fgsm" and o.adaptive == pgd.adaptive
                     and o.extra.get("mode") == pgd.extra.get("mode")), None)
        if fgsm is not None:
            yield pgd, fgsm


def _pgd_vs_fgsm(model: str, defense: str, outcomes: Sequence[Outcome], tol: float,
                 targeted: bool = False) -> list[SanityCheck]:
    """Untargeted: PGD's robust accuracy ≤ FGSM's. Targeted: PGD's target-hit rate ≥ FGSM's (a
    targeted attack does not try to maximize errors, only to reach its target)."""
    checks = []
    for pgd, fgsm in _pgd_fgsm_pairs(outcomes):
        mode = pgd.extra.get("mode", "")
        if targeted:
            a, b = _hits(pgd), _hits(fgsm)
            bad = [e for e, p, f in zip(pgd.eps, a, b) if p < f - tol - 1e-9]
            checks.append(SanityCheck(f"PGD at least as strong as FGSM ({mode}, targeted)", not bad,
                                      "PGD reaches the target at least as often as FGSM at every eps" if not bad
                                      else f"PGD reaches the target less often than FGSM at eps {bad}",
                                      model, defense, {"eps": pgd.eps, "pgd_target_hits": a, "fgsm_target_hits": b}))
            continue
        a, b = _acc(pgd), _acc(fgsm)
        bad = [e for e, p, f in zip(pgd.eps, a, b) if p > f + tol + 1e-9]
        checks.append(SanityCheck(f"PGD at least as strong as FGSM ({mode})", not bad,
                                  "PGD ≤ FGSM at every eps" if not bad else f"PGD weaker than FGSM at eps {bad}",
                                  model, defense, {"eps": pgd.eps, "pgd": a, "fgsm": b}))
    return checks


def _adaptive_vs_naive(model: str, defense: str, outcomes: Sequence[Outcome], tol: float) -> SanityCheck:
    def folded(adaptive: bool) -> list[float]:
        chosen = [o for o in outcomes if o.adaptive == adaptive]
        return worst_case(chosen).scores() if chosen else []

    adaptive, naive = folded(True), folded(False)
    tol = max(tol, 1.0 / max(1, outcomes[0].correct.shape[1]))  # and never less than one sample
    bad = [e for e, a, n in zip(outcomes[0].eps, adaptive, naive) if a > n + tol + 1e-9]
    detail = f"adaptive attack at least as strong as naive (within {tol:g})" if not bad else (
        f"adaptive attack more than {tol:g} weaker than naive at eps {bad}: the evaluation may be unreliable")
    return SanityCheck("adaptive attack at least as strong as naive", not bad, detail, model, defense,
                       {"eps": outcomes[0].eps, "adaptive": adaptive, "naive": naive})


LARGE_EPS_ACCURACY = 0.05  # what an unbounded PGD may leave at most, unless the task says otherwise


def large_eps_check(model_name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, objective: Objective,
                    config: EvalConfig, device: torch.device, max_accuracy: float | None = None) -> SanityCheck:
    """An undefended model must be fooled almost always when eps covers the whole pixel range
    (a segmenter: lose at least half its right pixels)."""
    from attacks import PGD

    eps = sanity_eps(config.norm, x)
    task = task_of(objective)
    if max_accuracy is None:
        share = task.large_eps_share
        max_accuracy = LARGE_EPS_ACCURACY if share is None else round(
            share * float(objective.quality(predict(model, x, device), y).mean()), 4)
    attack = PGD(norm=config.norm, steps=config.steps, random_start=True, seed=config.seed,
                 objective=objective.with_loss(task.large_eps_loss))
    x_adv = attack(model, x.to(device), y.to(device), eps, keys=torch.arange(len(x), device=device))
    quality = objective.quality(predict(model, x_adv, device), y).float().cpu()
    acc = float(quality.mean())
    survivors = (quality > 0.5).nonzero().flatten().tolist()
    passed = acc <= max_accuracy
    masking = "" if passed else " — gradient masking suspected: even an unbounded attack is misled"
    return SanityCheck(f"accuracy reaches ~0 at a very large eps ({eps})", passed,
                       f"PGD-{config.steps} robust accuracy {acc:.4f} at eps {eps} (must be ≤ {max_accuracy}){masking}",
                       model_name, "none", {"eps": eps, "robust_accuracy": acc, "n": len(y),
                                            "samples": survivors[:20]}, indicator="unconstrained attack failure")


def more_steps_check(model_name: str, defense: str, attack_model: nn.Module, judge: nn.Module, samples,
                     objective: Objective, config: EvalConfig, device: torch.device, tol: float,
                     early_stop: bool = True) -> SanityCheck:
    """PGD with 4x the steps at the headline eps must not leave the model *more* accurate.

    Both runs use the step size of the shorter one and the same random start, so the longer run
    continues the shorter one: on a deterministic model it can only fool more samples, and a much
    lower accuracy says the configured attack had not converged.
    """
    from attacks import PGD

    accs = {}
    x, y, target = samples.x, samples.y, samples.target
    targeted = target is not None  # then the configured (targeted) attack is the one checked
    for steps in (config.steps, 4 * config.steps):
        attack = PGD(norm=config.norm, steps=steps, step_size=pgd_step_size(config, config.headline_eps),
                     restarts=config.restarts, objective=objective, random_start=True, seed=config.seed,
                     early_stop=early_stop, targeted=targeted)
        kwargs = {"keys": torch.arange(len(x), device=device)}
        if targeted:
            kwargs["target"] = target.to(device)
        x_adv = attack(attack_model, x.to(device), y.to(device), config.headline_eps, **kwargs)
        logits = predict(judge, x_adv, device)
        accs[steps] = float(objective.quality(logits, y).mean())
        if targeted:  # a targeted attack is judged by how often it reaches the target
            accs[steps] = (accs[steps], float(objective.success(logits, target, targeted=True).float().mean()))
    if targeted:
        (base, base_hits), (more, more_hits) = accs[config.steps], accs[4 * config.steps]
        return SanityCheck("more PGD steps do not help the model (targeted)", more_hits >= base_hits - tol - 1e-9,
                           f"target hit rate PGD-{config.steps}: {base_hits:.4f}, PGD-{4 * config.steps}: "
                           f"{more_hits:.4f} at eps {config.headline_eps:.4g}", model_name, defense,
                           {"steps": [config.steps, 4 * config.steps], "target_hits": [base_hits, more_hits],
                            "robust_accuracy": [base, more]})
    base, more = accs[config.steps], accs[4 * config.steps]
    return SanityCheck("more PGD steps do not help the model", more <= base + tol + 1e-9,
                       f"PGD-{config.steps}: {base:.4f}, PGD-{4 * config.steps}: {more:.4f} "
                       f"at eps {config.headline_eps:.4g}" + (" (attack not converged: raise --steps)"
                                                               if more < base - 0.05 else ""),
                       model_name, defense, {"steps": [config.steps, 4 * config.steps], "robust_accuracy": [base, more]},
                       indicator="incomplete optimization")
