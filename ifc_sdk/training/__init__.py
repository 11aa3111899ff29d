"""Training IFC: the reference's loss, targets, recipes and (in `trainer`) the training loop on torch DDP.

Modules: `recipes` (the reference configs), `loader` (the seeded clip stream), `criterion` / `matcher` /
`targets` (the loss), `step` (one optimisation step), `init_weights` (starting weights), `state` (checkpoints
and exact resume), `run_log` (metrics.jsonl, progress), `trainer` (the loop and `train`).
"""

from ifc_sdk.training.criterion import IFCCriterion
from ifc_sdk.training.init_weights import load_finetune_init
from ifc_sdk.training.matcher import HungarianMatcher
from ifc_sdk.training.recipes import RECIPES, Recipe, get_recipe
from ifc_sdk.training.targets import prepare_targets
from ifc_sdk.training.trainer import TrainResult, train

__all__ = [
    "RECIPES",
    "HungarianMatcher",
    "IFCCriterion",
    "Recipe",
    "TrainResult",
    "get_recipe",
    "load_finetune_init",
    "prepare_targets",
    "train",
]
