"""One optimisation step, as the reference (detectron2 ``SimpleTrainer`` + IFC's ``build_optimizer``).

global batch -> normalise and zero-pad to a size agreed on by all processes -> ``IFC.forward`` (autocast) ->
`IFCCriterion` in fp32 (weighted, deep supervision) -> sum of the ``loss_*`` terms -> backward (DDP averages
gradients) -> L2 clipping of the full model's gradient norm to ``clip_value`` -> AdamW (backbone learning rate
x ``backbone_multiplier``) -> warmup + multi-step LR.

Two differences from the reference make N processes train like one with the same total batch: the padded size
is the maximum over all processes (the reference pads per GPU, so its loss depends on how a batch is split),
and under DDP each process's cross-entropy is rescaled (`globalize_ce`) so that the averaged gradient is that
of the cross-entropy over the global batch (the reference normalises it per GPU).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ifc_sdk.modeling.ifc import IFC
from ifc_sdk.training import distributed as du
from ifc_sdk.training.criterion import IFCCriterion
from ifc_sdk.training.loader import clip_instances, local_padded_size, pad_clips
from ifc_sdk.training.recipes import Recipe
from ifc_sdk.training.targets import prepare_targets

__all__ = ["PRECISIONS", "StepRunner", "build_optimizer", "globalize_ce", "pad_size"]

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
LOGGED_LOSSES = ("loss_ce", "loss_mask", "loss_dice", "class_error")


def build_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; backbone learning rate x ``backbone_multiplier``."""
    backbone, rest = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (backbone if "backbone" in name else rest).append(p)
    groups = [{"params": rest, "lr": recipe.base_lr}]
    if backbone:
        groups.append({"params": backbone, "lr": recipe.base_lr * recipe.backbone_multiplier})
    return torch.optim.AdamW(groups, lr=recipe.base_lr, betas=recipe.betas, weight_decay=recipe.weight_decay)


def pad_size(size: list[int] | tuple[int, int], divisibility: int) -> tuple[int, int]:
    """``(H, W)`` rounded up to multiples of ``divisibility`` (0 or 1: unchanged).

    With a multiple of 8, the stride-8 predictions and the stride-4 targets cover the same padded extent; otherwise
    the criterion's resize of ``ceil(H/8)`` onto ``ceil(H/4)`` cells (as in the reference) teaches the model a
    small stretch of its masks, noticeable at low resolution.
    """
    if divisibility <= 1:
        return int(size[0]), int(size[1])
    return tuple(-(-int(s) // divisibility) * divisibility for s in size)


def globalize_ce(
    losses: dict[str, torch.Tensor],
    targets: list[dict],
    num_queries: int,
    no_object_weight: float,
    info: du.DistInfo,
) -> dict[str, torch.Tensor]:
    """Rescale this process's cross-entropy terms so that DDP's gradient average equals the gradient of the
    cross-entropy over the global batch.

    The criterion's weighted cross-entropy is normalised by this process's sum of class weights
    ``S_r = sum over its queries of (1 if matched else no_object_weight)``; averaging over W processes gives
    ``mean_r CE_r``, which differs from the single-process ``sum_r S_r CE_r / S``. Multiplying ``CE_r`` by
    ``W * S_r / S`` makes them equal (factor 1 on one process). The mask losses need nothing: the criterion
    already normalises them by the global number of masks.
    """
    matched = sum(min(num_queries, len(t["labels"])) for t in targets)
    local = matched + (len(targets) * num_queries - matched) * no_object_weight
    total = torch.tensor([float(local)], dtype=torch.float64, device=info.device)
    torch.distributed.all_reduce(total)
    scale = info.world_size * local / float(total.item())
    return {k: (v * scale if k == "loss_ce" or k.startswith("loss_ce_") else v) for k, v in losses.items()}


def _to_float(outputs: dict, keep_aux: bool) -> dict:
    """Model outputs in fp32 for the loss (autocast may give bf16/fp16); aux layers dropped unless used."""
    out = {"pred_logits": outputs["pred_logits"].float(), "pred_masks": outputs["pred_masks"].float()}
    if keep_aux:
        out["aux_outputs"] = [
            {k: v.float() for k, v in aux.items()} for aux in outputs.get("aux_outputs", [])
        ]
    return out


def _scalars(losses: Mapping[str, torch.Tensor]) -> dict[str, float]:
    return {k: round(float(v), 4) for k, v in losses.items()}


@dataclass
class StepRunner:
    """Runs optimisation steps of ``model`` (wrapped in DDP as ``ddp_model`` when distributed).

    ``global_ce`` applies `globalize_ce` under DDP; ``scaler`` is the fp16 grad scaler (None otherwise).
    """

    model: IFC
    ddp_model: nn.Module
    criterion: IFCCriterion
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    recipe: Recipe
    info: du.DistInfo
    precision: str = "fp32"
    global_ce: bool = True

    def __post_init__(self) -> None:
        self.params = [p for p in self.model.parameters() if p.requires_grad]

    def __call__(self, clips: list[dict[str, Any]], iteration: int) -> tuple[dict[str, float], float]:
        """One step on this process's share ``clips`` of a global batch.

        Returns:
            The logged losses (``loss`` and `LOGGED_LOSSES`, floats) and the learning rate the step used.
        """
        recipe, info, model = self.recipe, self.info, self.model
        padded = pad_size(du.all_reduce_max(list(local_padded_size(clips)), info), recipe.size_divisibility)
        images, sizes = pad_clips(clips, model.normalize, padded, info.device)  # (B, T, 3, H, W)
        targets = prepare_targets(
            clip_instances(clips, info.device),
            padded,
            mask_stride=recipe.mask_stride,
            match_stride=recipe.match_stride,
        )
        dtype = PRECISIONS[self.precision]
        autocast = (
            torch.autocast(info.device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        )
        with autocast:
            outputs = self.ddp_model(images, sizes)
        outputs = _to_float(outputs, recipe.deep_supervision)
        losses = self.criterion(outputs, targets)
        if info.distributed and self.global_ce:
            losses = globalize_ce(losses, targets, model.config.num_queries, recipe.no_object_weight, info)
        loss = sum(v for k, v in losses.items() if k.startswith("loss_"))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at iteration {iteration}: {_scalars(losses)}")
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if recipe.clip_type == "full_model" and recipe.clip_value > 0:
            torch.nn.utils.clip_grad_norm_(self.params, recipe.clip_value, recipe.clip_norm_type)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        logged = {k: float(losses[k].detach()) for k in LOGGED_LOSSES}
        logged["loss"] = float(loss.detach())
        return logged, lr
