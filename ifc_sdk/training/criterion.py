"""The IFC training loss: Hungarian-matched cross-entropy, sigmoid focal and dice mask losses (reference IFC).

Reproduces the reference ``SetCriterion`` and the weighting applied by ``Ifc.forward``: the returned losses are
already multiplied by their weights; ``class_error`` and ``cardinality_error*`` are unweighted logging values
without gradients.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from ifc_sdk.training.matcher import HungarianMatcher

Indices = list[tuple[Tensor, Tensor]]


def sigmoid_focal_loss(
    inputs: Tensor, targets: Tensor, num_masks: float, alpha: float = 0.25, gamma: float = 2.0
) -> Tensor:
    """Focal loss averaged over the elements of each row, summed over rows, divided by ``num_masks``.

    Args:
        inputs: mask logits ``(n, D)``.
        targets: float targets in [0, 1], ``(n, D)``.
    """
    prob = inputs.sigmoid()
    ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.mean(1).sum() / num_masks


def dice_loss(inputs: Tensor, targets: Tensor, num_masks: float) -> Tensor:
    """``1 - (2 * sum(p * g) + 1) / (sum p + sum g + 1)`` per row, summed, divided by ``num_masks``.

    Args:
        inputs: mask logits ``(n, D)``.
        targets: float targets ``(n, D)``.
    """
    prob = inputs.sigmoid()
    numerator = 2 * (prob * targets).sum(1)
    denominator = prob.sum(1) + targets.sum(1)
    return (1 - (numerator + 1) / (denominator + 1)).sum() / num_masks


class IFCCriterion(nn.Module):
    """Loss of the IFC model over the final decoder layer and every auxiliary layer.

    Args:
        num_classes: number of object classes C (the no-object class is index C).
        class_weight, mask_weight, dice_weight: weights of ``loss_ce``, ``loss_mask`` (focal) and
            ``loss_dice``; the matcher uses ``cost_class=1`` and ``cost_dice=dice_weight`` like the reference.
        no_object_weight: cross-entropy weight of the no-object class (``empty_weight[-1]``).
        focal_alpha, focal_gamma: sigmoid focal loss parameters.
        matcher: replaces the default ``HungarianMatcher(1, dice_weight)``.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        class_weight: float = 1.0,
        mask_weight: float = 3.0,
        dice_weight: float = 3.0,
        no_object_weight: float = 0.1,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        matcher: HungarianMatcher | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.weight_dict = {"loss_ce": class_weight, "loss_mask": mask_weight, "loss_dice": dice_weight}
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.matcher = (
            matcher if matcher is not None else HungarianMatcher(cost_class=1.0, cost_dice=dice_weight)
        )
        empty_weight = torch.ones(num_classes + 1)
        empty_weight[-1] = no_object_weight
        self.register_buffer("empty_weight", empty_weight)

    def forward(self, outputs: dict, targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """Compute the weighted losses.

        Args:
            outputs: ``pred_logits`` ``(B, Q, C+1)``, ``pred_masks`` ``(B, Q, T, h, w)`` and optionally
                ``aux_outputs``, a list of dicts with the same two keys (one per intermediate decoder layer).
            targets: per video ``labels`` ``(N,)`` int64, ``masks`` and ``match_masks`` ``(N, T, H, W)`` float.

        Returns:
            ``loss_ce``, ``loss_mask``, ``loss_dice``, ``class_error``, ``cardinality_error`` and, for aux
            layer i, ``loss_ce_i``, ``loss_mask_i``, ``loss_dice_i``, ``cardinality_error_i`` (scalars).
        """
        num_masks = self._num_masks(targets, outputs["pred_logits"].device)
        losses = self._layer_losses(outputs, targets, num_masks, log=True)
        for i, aux in enumerate(outputs.get("aux_outputs", [])):
            aux_losses = self._layer_losses(aux, targets, num_masks, log=False)
            losses.update({f"{k}_{i}": v for k, v in aux_losses.items()})
        return losses

    @staticmethod
    def _num_masks(targets: list[dict[str, Tensor]], device: torch.device) -> float:
        """Number of gt instances in the batch (averaged over processes when distributed), at least 1."""
        num = torch.as_tensor([float(sum(len(t["labels"]) for t in targets))], device=device)
        world = 1
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(num)
            world = dist.get_world_size()
        return torch.clamp(num / world, min=1).item()

    def _layer_losses(
        self, outputs: dict[str, Tensor], targets: list[dict[str, Tensor]], num_masks: float, log: bool
    ) -> dict[str, Tensor]:
        """Weighted losses of one decoder layer with its own matching."""
        indices = self.matcher(outputs, targets)
        losses = self._loss_labels(outputs, targets, indices, log)
        losses.update(self._loss_masks(outputs, targets, indices, num_masks))
        losses["cardinality_error"] = self._cardinality_error(outputs["pred_logits"], targets)
        for key, weight in self.weight_dict.items():
            losses[key] = losses[key] * weight
        return losses

    @staticmethod
    def _src_index(indices: Indices) -> tuple[Tensor, Tensor]:
        """(batch index, query index) of every matched prediction."""
        batch = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)])
        return batch, torch.cat([src for src, _ in indices])

    def _loss_labels(
        self, outputs: dict[str, Tensor], targets: list[dict[str, Tensor]], indices: Indices, log: bool
    ) -> dict[str, Tensor]:
        """Weighted cross-entropy over all queries (unmatched ones target no-object) and ``class_error``."""
        logits = outputs["pred_logits"]
        idx = self._src_index(indices)
        matched_classes = torch.cat([t["labels"][j] for t, (_, j) in zip(targets, indices, strict=True)]).to(
            logits.device
        )
        target_classes = torch.full(
            logits.shape[:2], self.num_classes, dtype=torch.int64, device=logits.device
        )
        target_classes[idx] = matched_classes
        losses = {"loss_ce": F.cross_entropy(logits.transpose(1, 2), target_classes, self.empty_weight)}
        if log:
            losses["class_error"] = 100 - _top1_accuracy(logits[idx].detach(), matched_classes)
        return losses

    def _loss_masks(
        self, outputs: dict[str, Tensor], targets: list[dict[str, Tensor]], indices: Indices, num_masks: float
    ) -> dict[str, Tensor]:
        """Focal and dice losses of matched masks, predictions upsampled bilinearly to the gt size."""
        src_masks = outputs["pred_masks"][self._src_index(indices)]  # (n, T, h, w)
        tgt_masks = torch.cat([t["masks"][j] for t, (_, j) in zip(targets, indices, strict=True)]).to(
            src_masks
        )
        src_masks = F.interpolate(src_masks, size=tgt_masks.shape[-2:], mode="bilinear", align_corners=False)
        src_masks = src_masks.flatten(1)
        tgt_masks = tgt_masks.flatten(1)
        return {
            "loss_mask": sigmoid_focal_loss(
                src_masks, tgt_masks, num_masks, self.focal_alpha, self.focal_gamma
            ),
            "loss_dice": dice_loss(src_masks, tgt_masks, num_masks),
        }

    @staticmethod
    @torch.no_grad()
    def _cardinality_error(logits: Tensor, targets: list[dict[str, Tensor]]) -> Tensor:
        """Mean |#queries whose argmax is not no-object - #targets| over the batch."""
        tgt_lengths = torch.as_tensor([len(t["labels"]) for t in targets], device=logits.device)
        card_pred = (logits.argmax(-1) != logits.shape[-1] - 1).sum(1)
        return F.l1_loss(card_pred.float(), tgt_lengths.float())


@torch.no_grad()
def _top1_accuracy(logits: Tensor, target: Tensor) -> Tensor:
    """Top-1 accuracy in percent of ``logits`` ``(n, C+1)`` against ``target`` ``(n,)``; 0 when n == 0."""
    if target.numel() == 0:
        return torch.zeros([], device=logits.device)
    return (logits.argmax(-1) == target).float().sum() * (100.0 / target.numel())
