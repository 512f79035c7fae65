"""CosPGD: PGD on a per-pixel cross-entropy weighted by the prediction's agreement with the label."""
from __future__ import annotations

from attacks.registry import register_attack
from attacks.segpgd import SegmentationPGD


@register_attack("cospgd")
class CosPGD(SegmentationPGD):
    r"""CosPGD: PGD on a per-pixel cross-entropy scaled by a cosine alignment score.

    Paper: Agnihotri, Jung, Keuper, "CosPGD: an efficient white-box adversarial attack for
    pixel-wise prediction tasks", ICML 2024, https://arxiv.org/abs/2302.02213.

    Each valid pixel's CE is multiplied by the cosine similarity between ``softmax(logits)`` and
    its one-hot label (``1 −`` that when targeted), detached, then averaged over each image's
    valid pixels (:func:`attacks.losses.cospgd_weights`). Pixels the model still gets right weigh
    most; a pixel already confidently wrong weighs little, so the gradient is not spent on it.
    Softmax as in the authors' ``cospgd`` package (see :func:`~attacks.losses.cospgd_weights`).

    Distance: L∞ or L2 (``norm``), as :class:`~attacks.pgd.PGD`.

    Arguments:
        norm (Norm | str): ``"linf"`` or ``"l2"``. Default: ``"linf"``.
        steps (int): gradient steps per restart. Default: ``10``.
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
        >>> attack = CosPGD(norm="l2", steps=20, objective=Segmentation(ignore_index=255), seed=0)
        >>> x_adv = attack(segmenter, x, masks, eps=0.5)
    """

    LOSS = own_loss = "cospgd"  # its loss is its name
