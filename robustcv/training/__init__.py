"""Training: recipes, augmentation, losses, schedules and the train-if-absent entry point."""
from robustcv.training.recipe import Recipe, spec_hash
from robustcv.training.trainer import TrainResult, ensure_trained, fit

__all__ = ["Recipe", "TrainResult", "ensure_trained", "fit", "spec_hash"]
