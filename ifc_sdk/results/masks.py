"""COCO run-length encoding of boolean masks, and boxes read off the encoded masks.

Masks are stored as pycocotools' compressed RLE (``counts`` as bytes) so a result for a long video stays
small; arrays are decoded only when asked for.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pycocotools import mask as mask_utils

RLE = dict  # {"size": [h, w], "counts": bytes}


def encode_masks(masks: np.ndarray) -> list[RLE]:
    """Encode boolean masks ``(N, H, W)`` into N compressed COCO RLEs."""
    if masks.ndim != 3:
        raise ValueError(f"expected masks of shape (N, H, W), got {masks.shape}")
    if masks.shape[0] == 0:
        return []
    # pycocotools wants (H, W, N) uint8 in Fortran order, i.e. the bytes of C-ordered (N, W, H): one transposing
    # copy of the 1-byte masks, viewed as uint8 without another one.
    columns = np.ascontiguousarray(masks.transpose(0, 2, 1), dtype=bool if masks.dtype == bool else np.uint8)
    return mask_utils.encode(columns.view(np.uint8).transpose(2, 1, 0))


def decode_masks(rles: Sequence[RLE]) -> np.ndarray:
    """Decode N compressed COCO RLEs of one size into a boolean array ``(N, H, W)``."""
    if len(rles) == 0:
        raise ValueError("decode_masks needs at least one RLE to know the size")
    return mask_utils.decode(list(rles)).transpose(2, 0, 1).astype(bool)


def empty_rle(size: tuple[int, int]) -> RLE:
    """The compressed RLE of an all-False mask of ``size`` (height, width)."""
    return encode_masks(np.zeros((1, *size), dtype=bool))[0]


def rle_boxes(rles: Sequence[RLE]) -> np.ndarray:
    """float32 ``(N, 4)`` tight boxes ``[x, y, w, h]`` of the masks in pixels (zeros for an empty mask)."""
    if len(rles) == 0:
        return np.zeros((0, 4), dtype=np.float32)
    return mask_utils.toBbox(list(rles)).astype(np.float32).reshape(-1, 4)


def rle_areas(rles: Sequence[RLE]) -> np.ndarray:
    """int64 ``(N,)`` mask areas in pixels."""
    if len(rles) == 0:
        return np.zeros(0, dtype=np.int64)
    return mask_utils.area(list(rles)).astype(np.int64).reshape(-1)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """``[x, y, w, h]`` -> ``[x1, y1, x2, y2]`` (``x2 = x + w``: the right edge of the last pixel column)."""
    out = boxes.copy()
    out[..., 2:] += boxes[..., :2]
    return out
