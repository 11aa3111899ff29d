"""Hungarian matching between the predicted queries of a clip and its ground-truth instances (reference IFC)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn


def dice_coefficient(inputs: Tensor, targets: Tensor) -> Tensor:
    """Pairwise soft dice coefficient ``(2 * sum(p * g) + 1) / (sum p + sum g + 1)``.

    Args:
        inputs: mask logits ``(Q, ...)`` (sigmoid is applied here).
        targets: float masks ``(N, ...)`` of the same trailing shape.

    Returns:
        ``(Q, N)`` coefficients; higher is better.
    """
    prob = inputs.sigmoid().flatten(1).unsqueeze(1)
    tgt = targets.flatten(1).unsqueeze(0)
    numerator = 2 * (prob * tgt).sum(2)
    denominator = prob.sum(-1) + tgt.sum(-1)
    return (numerator + 1) / (denominator + 1)


class HungarianMatcher(nn.Module):
    """One-to-one assignment of queries to gt instances maximising ``cost_dice * dice + cost_class * prob``.

    The dice term is computed over all T frames of the clip after bilinearly resizing (align_corners=False)
    the predicted masks to the size of ``match_masks``; the class term is the softmax probability of the gt
    class.
    """

    def __init__(self, cost_class: float = 1.0, cost_dice: float = 3.0) -> None:
        super().__init__()
        if cost_class == 0 and cost_dice == 0:
            raise ValueError("HungarianMatcher: cost_class and cost_dice cannot both be 0")
        self.cost_class = cost_class
        self.cost_dice = cost_dice

    @torch.no_grad()
    def forward(
        self, outputs: dict[str, Tensor], targets: list[dict[str, Tensor]]
    ) -> list[tuple[Tensor, Tensor]]:
        """Match one decoder layer.

        Args:
            outputs: ``pred_logits`` ``(B, Q, C+1)`` and ``pred_masks`` ``(B, Q, T, h, w)``.
            targets: per video ``labels`` ``(N,)`` and ``match_masks`` ``(N, T, H, W)``.

        Returns:
            Per video ``(src, tgt)`` int64 tensors of equal length ``min(Q, N)``: query index and target
            index, ordered by query index as scipy returns them.
        """
        prob = outputs["pred_logits"].softmax(-1)
        masks = outputs["pred_masks"]
        b, q, t, s_h, s_w = masks.shape
        t_h, t_w = targets[0]["match_masks"].shape[-2:]
        if (s_h, s_w) != (t_h, t_w):
            masks = F.interpolate(
                masks.reshape(b, q * t, s_h, s_w), size=(t_h, t_w), mode="bilinear", align_corners=False
            ).view(b, q, t, t_h, t_w)

        indices = []
        for b_i, target in enumerate(targets):
            cost_class = prob[b_i][:, target["labels"]]
            cost_dice = dice_coefficient(masks[b_i], target["match_masks"].to(masks)).to(cost_class)
            cost = self.cost_dice * cost_dice + self.cost_class * cost_class
            src, tgt = linear_sum_assignment(cost.cpu().numpy(), maximize=True)
            indices.append((torch.as_tensor(src, dtype=torch.int64), torch.as_tensor(tgt, dtype=torch.int64)))
        return indices
