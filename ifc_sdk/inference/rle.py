"""COCO run-length encoding of boolean masks held on an accelerator.

`encode_masks_torch` finds the runs with tensor operations where the masks are (only the run boundaries cross
to the host) and lets pycocotools compress the counts, so its output is byte-identical to
`ifc_sdk.results.encode_masks` (which walks every pixel on the CPU). `rles_from_run_starts`, the compression
step, also serves `ifc_sdk.inference.upsample`, which finds the runs without making the masks.
"""

from __future__ import annotations

import numpy as np
import torch
from pycocotools import mask as mask_utils

from ifc_sdk.results import RLE


def rles_from_run_starts(
    mask: np.ndarray, start: np.ndarray, starts_on: np.ndarray, size: tuple[int, int]
) -> tuple[list[RLE], np.ndarray]:
    """Compressed COCO RLEs of ``len(starts_on)`` masks of ``size`` from where their runs start: ``start`` are the
    pixels (column-major index, in ``(0, H * W)``) whose value differs from the pixel before, listed mask by
    mask (``mask``, sorted) in order; ``starts_on``: whether pixel 0 is on. Returns the RLEs and the areas."""
    h, w = size
    bounds = np.searchsorted(mask, np.arange(len(starts_on) + 1))
    objs, areas = [], np.zeros(len(starts_on), dtype=np.int64)
    for i, on in enumerate(starts_on):
        counts = np.diff(np.concatenate(([0], start[bounds[i] : bounds[i + 1]], [h * w])))
        if on:  # COCO runs start with a (possibly empty) run of zeros
            counts = np.concatenate(([0], counts))
        areas[i] = counts[1::2].sum()
        objs.append({"counts": counts.tolist(), "size": [h, w]})
    return mask_utils.frPyObjects(objs, h, w), areas


def encode_masks_torch(masks: torch.Tensor) -> tuple[list[RLE], np.ndarray]:
    """Encode bool ``(N, H, W)`` masks (any device) into N compressed COCO RLEs.

    Returns the RLEs and the masks' areas (int64 ``(N,)``).
    """
    if masks.ndim != 3:
        raise ValueError(f"expected masks of shape (N, H, W), got {tuple(masks.shape)}")
    n, h, w = masks.shape
    if n == 0:
        return [], np.zeros(0, dtype=np.int64)
    flat = masks.transpose(1, 2).reshape(n, h * w)  # COCO RLE runs go down the columns
    changes = torch.nonzero(flat[:, 1:] != flat[:, :-1]).cpu().numpy()  # (k, 2): mask, pixel before a change
    return rles_from_run_starts(changes[:, 0], changes[:, 1] + 1, flat[:, 0].cpu().numpy(), (h, w))
