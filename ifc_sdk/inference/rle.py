"""COCO run-length encoding of boolean masks held on an accelerator.

`encode_masks_torch` finds the runs with tensor operations where the masks are (only the run boundaries cross
to the host) and lets pycocotools compress the counts, so its output is byte-identical to
`ifc_sdk.results.encode_masks` (which walks every pixel on the CPU).
"""

from __future__ import annotations

import numpy as np
import torch
from pycocotools import mask as mask_utils

from ifc_sdk.results import RLE


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
    changes = torch.nonzero(flat[:, 1:] != flat[:, :-1])  # (k, 2): mask, position before a change
    first = flat[:, 0].cpu().numpy()
    area = flat.sum(1).cpu().numpy().astype(np.int64)
    changes = changes.cpu().numpy()
    bounds = np.searchsorted(changes[:, 0], np.arange(n + 1))
    objs = []
    for i in range(n):
        edges = np.concatenate(([0], changes[bounds[i] : bounds[i + 1], 1] + 1, [h * w]))
        counts = np.diff(edges)
        if first[i]:  # COCO runs start with a (possibly empty) run of zeros
            counts = np.concatenate(([0], counts))
        objs.append({"counts": counts.tolist(), "size": [h, w]})
    return mask_utils.frPyObjects(objs, h, w), area
