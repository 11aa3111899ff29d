"""Turn per-frame ground truth of a batch of clips into the per-video targets of the loss (reference IFC)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

FrameInstances = Mapping[str, Tensor]


def prepare_targets(
    per_video_instances: Sequence[Sequence[FrameInstances]],
    padded_size: tuple[int, int] | None = None,
    *,
    mask_stride: int = 4,
    match_stride: int = 4,
) -> list[dict[str, Tensor]]:
    """Build loss targets like the reference ``Ifc.prepare_targets``.

    Args:
        per_video_instances: per video, per frame (T frames, every video of the batch has the same T) a
            mapping with ``gt_classes`` ``(N,)`` int64 (``num_classes`` = dummy for an absent instance),
            ``gt_ids`` ``(N,)`` int64 (-1 = absent or empty) and ``gt_masks`` ``(N, H_f, W_f)`` bool. Row n is
            the same instance in every frame of a video.
        padded_size: ``(H, W)`` the masks are zero-padded to (bottom/right); defaults to the largest frame
            size of the batch, which is what the model pads the images to.
        mask_stride, match_stride: output strides of ``masks`` and ``match_masks``.

    Returns:
        Per video ``labels`` ``(N',)`` int64, ``ids`` ``(N', T)`` int64, ``masks`` ``(N', T, ceil(H/mask_stride),
        ceil(W/mask_stride))`` float and ``match_masks`` (same at ``match_stride``), where N' keeps only the
        instances whose id is not -1 in some frame. The class of an instance is taken from a frame where it is
        not the dummy class.
    """
    if padded_size is None:
        sizes = [tuple(f["gt_masks"].shape[-2:]) for video in per_video_instances for f in video]
        padded_size = (max(s[0] for s in sizes), max(s[1] for s in sizes))
    pad_h, pad_w = padded_size
    loss_size = (math.ceil(pad_h / mask_stride), math.ceil(pad_w / mask_stride))
    match_size = (math.ceil(pad_h / match_stride), math.ceil(pad_w / match_stride))

    targets = []
    for frames in per_video_instances:
        num_inst = len(frames[0]["gt_ids"])
        device = frames[0]["gt_masks"].device
        masks = torch.zeros((num_inst, len(frames), pad_h, pad_w), dtype=torch.bool, device=device)
        for f_i, frame in enumerate(frames):
            h, w = frame["gt_masks"].shape[-2:]
            masks[:, f_i, :h, :w] = frame["gt_masks"]
        ids = torch.stack([frame["gt_ids"] for frame in frames], dim=1)  # (N, T)
        classes = torch.stack([frame["gt_classes"] for frame in frames], dim=1)  # (N, T)
        # the dummy class is the largest, so the minimum over frames is the real class wherever there is one
        labels = classes.min(dim=1).values

        valid = (ids != -1).any(dim=1)
        masks = masks[valid].float()
        targets.append(
            {
                "labels": labels[valid],
                "ids": ids[valid],
                "masks": _resize(masks, loss_size),
                "match_masks": _resize(masks, match_size),
            }
        )
    return targets


def _resize(masks: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear (align_corners=False) resize of ``(N, T, H, W)`` float masks to ``(N, T, *size)``."""
    return F.interpolate(masks, size=size, mode="bilinear", align_corners=False)
