"""Per-sample attack losses, one function per (task, loss); the objectives pick among them.

Every function returns one value per sample ``[B]``. Classification losses take logits
``[B, K]`` and labels ``[B]``; per-pixel losses take ``[B, K, H, W]`` and masks ``[B, H, W]``
and average over each image's valid pixels (SegPGD's, CosPGD's and SEA's masked loss also take
the attack's direction, SegPGD's its progress); multi-label losses take ``[B, K]`` logits and 0/1
label vectors. Nothing here guesses the task from a shape.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy ``[B]``."""
    return F.cross_entropy(logits, y, reduction="none")


def _own_and_best_other(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The logit of class ``y`` and the largest other logit (class dim 1)."""
    index = y.unsqueeze(1)
    own = logits.gather(1, index).squeeze(1)
    other = logits.scatter(1, index, float("-inf")).amax(dim=1)
    return own, other


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Carlini-Wagner logit margin ``max_{j≠y} z_j − z_y`` per sample ``[B]``.

    Positive means misclassified. Untargeted attacks raise it for the true label; targeted
    attacks lower it for the target (target logit versus the largest other logit).
    """
    own, other = _own_and_best_other(logits, y)
    return other - own


def dlr(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Difference of logits ratio (Croce & Hein 2020): ``(max_{j≠y} z_j − z_y) / (z_π1 − z_π3)``.

    The margin divided by the spread of the top logits, so rescaling the logits (a saturated
    softmax, defensive distillation) does not shrink it. Needs at least 3 classes.
    """
    own, other = _own_and_best_other(logits, y)
    top = logits.topk(3, dim=1).values
    return (other - own) / (top[:, 0] - top[:, 2] + 1e-12)


def dlr_targeted(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Targeted DLR (Croce & Hein 2020): ``(z_t − z_y) / (z_π1 − (z_π3 + z_π4) / 2)``, to maximize.

    Needs at least 4 classes.
    """
    own = logits.gather(1, y.unsqueeze(1)).squeeze(1)
    aim = logits.gather(1, target.unsqueeze(1)).squeeze(1)
    top = logits.topk(4, dim=1).values
    return (aim - own) / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12)


def _valid_mean(values: torch.Tensor, y: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    """``[B]`` means of per-pixel ``values`` ``[B, H, W]`` over the pixels not ``ignore_index``."""
    if ignore_index is None:
        return values.flatten(1).mean(dim=1)
    valid = (y != ignore_index).to(values.dtype)
    return (values * valid).flatten(1).sum(dim=1) / valid.flatten(1).sum(dim=1).clamp_min(1)


def _safe_labels(y: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    return y if ignore_index is None else y.masked_fill(y == ignore_index, 0)


def pixel_cross_entropy_map(logits: torch.Tensor, y: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    """Per-pixel cross-entropy ``[B, H, W]``, zero on ignored pixels."""
    values = F.cross_entropy(logits, _safe_labels(y, ignore_index), reduction="none")
    return values if ignore_index is None else values.masked_fill(y == ignore_index, 0.0)


def pixel_cross_entropy(logits: torch.Tensor, y: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    """Mean per-pixel cross-entropy over each image's valid pixels ``[B]``."""
    return _valid_mean(pixel_cross_entropy_map(logits, y, ignore_index), y, ignore_index)


def pixel_margin(logits: torch.Tensor, y: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    """Mean per-pixel CW margin over each image's valid pixels ``[B]``."""
    return _valid_mean(margin(logits, _safe_labels(y, ignore_index)), y, ignore_index)


# --------------------------------------------------------------- segmentation attack losses
# An attack "still has to flip" a valid pixel while it is predicted as its true label
# (untargeted) or not yet as its target (targeted). The losses below spend their weight there;
# ``targeted`` only tells them which of the two a pixel's ``y`` is.


def _valid(y: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    return torch.ones_like(y, dtype=torch.bool) if ignore_index is None else y != ignore_index


def pending_pixels(logits: torch.Tensor, y: torch.Tensor, ignore_index: int | None,
                   targeted: bool = False) -> torch.Tensor:
    """Bool ``[B, H, W]``: the valid pixels still to flip (predicted as ``y`` when untargeted,
    not yet predicted as the target ``y`` when targeted)."""
    hit = logits.argmax(dim=1) == y
    return (hit != targeted) & _valid(y, ignore_index)


def segpgd_weights(logits: torch.Tensor, y: torch.Tensor, ignore_index: int | None, *,
                   targeted: bool = False, progress: float = 0.0) -> torch.Tensor:
    """SegPGD's per-pixel weights ``[B, H, W]`` (Gu et al., ECCV 2022, Eq. 5): ``1 − λ`` on the
    pixels still to flip, ``λ`` on those already flipped, 0 on ignored pixels.

    ``λ = progress / 2`` with ``progress = (t − 1) / T`` at step ``t`` of ``T``, which is the
    paper's ``λ(t) = (t − 1) / (2T)``: the first step attacks only the pixels still to flip, later
    steps weigh both kinds more evenly (λ < 1/2 throughout), so flipped pixels are not pushed back.
    """
    if not 0.0 <= float(progress) <= 1.0:
        raise ValueError(f"progress must be in [0, 1], got {progress}")
    lam = float(progress) / 2
    pending = pending_pixels(logits, y, ignore_index, targeted)
    weights = lam + (1 - 2 * lam) * pending.to(logits.dtype)
    return weights * _valid(y, ignore_index)


def segpgd_cross_entropy(logits: torch.Tensor, y: torch.Tensor, ignore_index: int | None, *,
                         targeted: bool = False, progress: float = 0.0) -> torch.Tensor:
    """SegPGD's loss ``[B]``: per-pixel CE weighted by :func:`segpgd_weights`, averaged over each
    image's valid pixels (the paper divides the weighted sum by the pixel count ``H·W``)."""
    weights = segpgd_weights(logits, y, ignore_index, targeted=targeted, progress=progress)
    return _valid_mean(weights * pixel_cross_entropy_map(logits, y, ignore_index), y, ignore_index)


def cospgd_weights(logits: torch.Tensor, y: torch.Tensor, ignore_index: int | None, *,
                   targeted: bool = False) -> torch.Tensor:
    """CosPGD's per-pixel weights ``[B, H, W]`` (Agnihotri, Jung & Keuper, ICML 2024), detached.

    The cosine similarity between ``softmax(logits)`` and the one-hot label, which for a one-hot
    vector is ``p_y / ‖p‖₂``; ``1 −`` that when targeted (the pixels far from the target weigh
    most); 0 on ignored pixels. Softmax, not sigmoid, as the authors' ``cospgd`` package does for
    segmentation: the class scores of one pixel compete, and softmax keeps the weight a function
    of the distribution the model predicts (sigmoid would score each logit alone).
    """
    with torch.no_grad():
        probs = torch.softmax(logits, dim=1, dtype=torch.promote_types(logits.dtype, torch.float32))
        own = probs.gather(1, _safe_labels(y, ignore_index).unsqueeze(1)).squeeze(1)
        cosine = own / probs.norm(dim=1)
        weights = 1 - cosine if targeted else cosine
        return (weights * _valid(y, ignore_index)).to(logits.dtype)


def cospgd_cross_entropy(logits: torch.Tensor, y: torch.Tensor, ignore_index: int | None, *,
                         targeted: bool = False) -> torch.Tensor:
    """CosPGD's loss ``[B]``: per-pixel CE times :func:`cospgd_weights`, averaged over each
    image's valid pixels."""
    weights = cospgd_weights(logits, y, ignore_index, targeted=targeted)
    return _valid_mean(weights * pixel_cross_entropy_map(logits, y, ignore_index), y, ignore_index)


def masked_cross_entropy(logits: torch.Tensor, y: torch.Tensor, ignore_index: int | None, *,
                         targeted: bool = False) -> torch.Tensor:
    """SEA's masked cross-entropy ``[B]`` (Croce, Singh & Hein, ECCV 2024): per-pixel CE on the
    pixels still to flip only, summed and divided by each image's valid-pixel count.

    Pixels already fooled stop contributing, so the gradient is spent on the ones left."""
    pending = pending_pixels(logits, y, ignore_index, targeted).to(logits.dtype)
    return _valid_mean(pending * pixel_cross_entropy_map(logits, y, ignore_index), y, ignore_index)


def class_balance_weights(y: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    """Per-pixel weights ``[B, H, W]`` that give each class present in an image the same total
    weight: ``1 / (n_c · C)`` on a valid pixel of class ``c``, with ``n_c`` its valid pixels of
    that class and ``C`` the classes present (0 on ignored pixels; each image's weights sum to 1)."""
    valid = _valid(y, ignore_index)
    safe = _safe_labels(y, ignore_index).flatten(1)
    counts = torch.zeros(y.shape[0], int(safe.max()) + 1 if safe.numel() else 1, device=y.device)
    counts.scatter_add_(1, safe, valid.flatten(1).to(counts.dtype))
    present = (counts > 0).sum(1, keepdim=True).clamp_min(1)
    weights = 1.0 / (counts.clamp_min(1) * present)
    return weights.gather(1, safe).view_as(y) * valid


def masked_balanced_cross_entropy(logits: torch.Tensor, y: torch.Tensor, ignore_index: int | None, *,
                                  targeted: bool = False) -> torch.Tensor:
    """SEA's class-balanced masked cross-entropy ``[B]`` (Croce, Singh & Hein, ECCV 2024): the
    masked CE of :func:`masked_cross_entropy` with each pixel weighted by
    :func:`class_balance_weights`, so a small object's pixels count as much as the background's.

    The authors weight by the inverse class frequency of the training set (fixed per dataset);
    an attack sees one image, so here the frequencies are the image's own."""
    pending = pending_pixels(logits, y, ignore_index, targeted).to(logits.dtype)
    weights = class_balance_weights(y, ignore_index).to(logits.dtype)
    return (weights * pending * pixel_cross_entropy_map(logits, y, ignore_index)).flatten(1).sum(1)


def masked_spherical(logits: torch.Tensor, y: torch.Tensor, ignore_index: int | None, *,
                     targeted: bool = False) -> torch.Tensor:
    """SEA's masked spherical loss ``[B]`` (Croce, Singh & Hein, 2023, the paper's optional
    fourth loss): minus the label's logit after each pixel's logit vector is scaled to unit L2
    norm, on the pixels still to flip, averaged over each image's valid pixels.

    The normalization makes the loss blind to the logits' scale, so confident pixels do not
    dominate; a targeted attack lowers it toward the target."""
    unit = logits / logits.norm(dim=1, keepdim=True).clamp_min(1e-12)
    own = unit.gather(1, _safe_labels(y, ignore_index).unsqueeze(1)).squeeze(1)
    pending = pending_pixels(logits, y, ignore_index, targeted).to(logits.dtype)
    return _valid_mean(-own * pending, y, ignore_index)


def pixel_js_divergence_map(logits: torch.Tensor, y: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    """Per-pixel Jensen–Shannon divergence ``[B, H, W]`` (natural log) between ``softmax(logits)``
    and the one-hot label, zero on ignored pixels.

    With ``p`` the probability of the label, the divergence depends on ``p`` alone:
    ``JS = log 2 + (p log p − (1 + p) log(1 + p)) / 2``: 0 at ``p = 1``, ``log 2`` at ``p = 0``.
    """
    log_own = F.log_softmax(logits, dim=1).gather(1, _safe_labels(y, ignore_index).unsqueeze(1)).squeeze(1)
    own = log_own.exp()
    values = math.log(2.0) + 0.5 * (own * log_own - (1 + own) * torch.log1p(own))
    return values if ignore_index is None else values.masked_fill(y == ignore_index, 0.0)


def pixel_js_divergence(logits: torch.Tensor, y: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    """SEA's Jensen–Shannon loss ``[B]`` (Croce, Singh & Hein, ECCV 2024): the per-pixel JS
    divergence to the one-hot label, averaged over each image's valid pixels.

    Bounded by ``log 2``, so a pixel already confidently wrong cannot dominate the loss as it does
    with cross-entropy; a targeted attack lowers it toward the target."""
    return _valid_mean(pixel_js_divergence_map(logits, y, ignore_index), y, ignore_index)


def multilabel_bce(logits: torch.Tensor, y: torch.Tensor, logit_thresholds: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy toward the 0/1 vector ``y``, summed over labels ``[B]``.

    The logits are shifted by the decision thresholds, so the loss is 0.5-centred at each
    label's own threshold.
    """
    shifted = logits - logit_thresholds
    return F.binary_cross_entropy_with_logits(shifted, y.to(logits.dtype), reduction="none").sum(dim=1)


def multilabel_margin(logits: torch.Tensor, y: torch.Tensor, logit_thresholds: torch.Tensor) -> torch.Tensor:
    """Minus the smallest signed per-label margin ``[B]``: positive once some decision is wrong.

    The signed margin of label k is ``(2 y_k − 1)(z_k − τ_k)`` (positive = decided as ``y_k``).
    """
    signed = (2 * y.to(logits.dtype) - 1) * (logits - logit_thresholds)
    return -signed.amin(dim=1)


def kl_divergence(logits: torch.Tensor, clean_logits: torch.Tensor) -> torch.Tensor:
    """``KL(softmax(clean) || softmax(logits))`` over the class dim 1, per sample ``[B]``
    (averaged over pixels for segmentation logits)."""
    log_p = F.log_softmax(clean_logits, dim=1)
    log_q = F.log_softmax(logits, dim=1)
    per_position = (log_p.exp() * (log_p - log_q)).sum(dim=1)
    return per_position.reshape(per_position.shape[0], -1).mean(dim=1)
