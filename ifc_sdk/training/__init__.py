"""Training IFC: the reference's loss, targets and (in `trainer`) the recipe on torch DDP."""

from ifc_sdk.training.criterion import IFCCriterion
from ifc_sdk.training.matcher import HungarianMatcher
from ifc_sdk.training.targets import prepare_targets

__all__ = ["HungarianMatcher", "IFCCriterion", "prepare_targets"]
