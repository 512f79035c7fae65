"""SegPGD: PGD on a per-pixel cross-entropy that shifts weight from unfooled to fooled pixels."""
from __future__ import annotations

from typing import Any

from attacks.norms import Norm
from attacks.objectives import Objective, as_segmentation
from attacks.pgd import PGD
from attacks.registry import register_attack


class SegmentationPGD(PGD):
    """PGD whose segmentation objective carries the loss named ``LOSS``; arguments as :class:`PGD`
    except ``objective``, which must be a :class:`~attacks.objectives.Segmentation` (its
    ``ignore_index`` and ``threshold`` are kept, its loss is replaced) or ``None`` (the defaults).

    Raises:
        ValueError: a non-segmentation objective (a classification loss name, a callable, ...).
    """

    LOSS = "ce"

    def __init__(self, norm: Norm | str = "linf", steps: int = 10, *, objective: Objective | None = None,
                 **options: Any) -> None:
        name = type(self).__name__
        super().__init__(norm=norm, steps=steps, objective=as_segmentation(objective, self.LOSS, name), **options)


@register_attack("segpgd")
class SegPGD(SegmentationPGD):
    r"""SegPGD: PGD on a per-pixel cross-entropy reweighted as the attack goes.

    Paper: Gu, Zhao, Tresp, Torr, "SegPGD: An Effective and Efficient Adversarial Attack for
    Evaluating and Boosting Segmentation Robustness", ECCV 2022, https://arxiv.org/abs/2207.12391.

    At step ``t`` of ``T`` the per-pixel CE of the pixels still correct (still off target when
    targeted) weighs ``1 − λ(t)``, that of the pixels already fooled ``λ(t)``, with
    ``λ(t) = (t − 1) / (2T)`` (:func:`attacks.losses.segpgd_weights`). The weighted sum is averaged
    over each image's valid pixels (``ignore_index`` left out), where the paper divides by ``H·W``.
    PGD passes the step through ``progress = (t − 1) / T`` of the objective's loss; restarts are
    compared at ``progress = 1`` (equal weights).

    Distance: L∞ or L2 (``norm``), as :class:`~attacks.pgd.PGD`.

    Arguments:
        norm (Norm | str): ``"linf"`` or ``"l2"``. Default: ``"linf"``.
        steps (int): gradient steps ``T`` per restart. Default: ``10``.
        objective (Segmentation | None): whose ``ignore_index`` and ``threshold`` to use; ``None``:
            ``Segmentation()`` (ignore_index 255, threshold 0.99). Default: ``None``.
        step_size, rel_step_size, random_start, start_sigma, restarts, targeted, early_stop, seed:
            as :class:`~attacks.pgd.PGD` (step ``2.5 * eps / steps`` by default).

    Shape:
        - model: images in [0, 1] -> logits [B, K, H, W].
        - x: [B, C, H, W] floating point in [0, 1].
        - y, target: [B, H, W] long masks (``ignore_index`` where void).
        - eps: float >= 0 in pixel units.
        - output: like ``x``, within eps of it and in [0, 1].

    Example:
        >>> attack = SegPGD(norm="linf", steps=20, objective=Segmentation(ignore_index=255), seed=0)
        >>> x_adv = attack(segmenter, x, masks, eps=8 / 255)
    """

    LOSS = own_loss = "segpgd"  # its loss is its name
