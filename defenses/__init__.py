"""Input-transform defenses and adversarial-training objectives (depends on torch and attacks).

Input transforms (``nn.Module``, images in [0, 1]) declare ``differentiable``/``randomized``
and offer ``bpda(x)``; ``DefendedModel`` puts one in front of a model and ``attack_model``
builds what each evaluation mode (naive / transfer / bpda / eot) differentiates. Training-time
defenses are objectives ``obj(model, x, y, loss_fn) -> loss`` (``build_objective``).
"""
from defenses.adversarial import FGSMRS, PGDAT, TRADES, AdversarialObjective, build_objective
from defenses.base import Identity, InputDefense, forward_as
from defenses.denoiser import Denoiser, load_denoiser, save_denoiser, train_denoiser
from defenses.registry import list_defenses, parse_defense, register_defense
from defenses.transforms import JPEG, BitDepth, GaussianBlur, MedianFilter, RandomResizePad, TVMinimization
from defenses.wrappers import (
    MODES, BPDAModel, DefendedModel, EOTModel, adaptive_mode, attack_defended, attack_model, bpda_model,
    defended_accuracy, defended_predict, eot_model,
)

__all__ = [
    "InputDefense", "Identity", "forward_as", "JPEG", "MedianFilter", "GaussianBlur", "BitDepth",
    "TVMinimization", "RandomResizePad", "parse_defense", "list_defenses", "register_defense",
    "DefendedModel", "BPDAModel", "EOTModel", "bpda_model", "eot_model", "attack_model", "adaptive_mode",
    "attack_defended", "defended_predict", "defended_accuracy", "MODES",
    "Denoiser", "train_denoiser", "save_denoiser", "load_denoiser",
    "AdversarialObjective", "FGSMRS", "PGDAT", "TRADES", "build_objective",
]
