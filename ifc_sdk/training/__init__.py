"""Training IFC: the reference's loss, targets, recipes and (in `trainer`) the training loop on torch DDP."""

from ifc_sdk.training.criterion import IFCCriterion
from ifc_sdk.training.matcher import HungarianMatcher
from ifc_sdk.training.recipes import RECIPES, Recipe, get_recipe
from ifc_sdk.training.targets import prepare_targets
from ifc_sdk.training.trainer import TrainResult, load_finetune_init, train

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
