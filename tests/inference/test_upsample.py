"""Cropped mask resizing: the same masks as resizing each whole logit map, for any output size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ifc_sdk.inference.upsample import threshold_resized
from ifc_sdk.results import encode_masks


def whole_map(logits: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """The reference's resize: every map to ``size``, bilinear, then ``> 0``."""
    return (F.interpolate(logits[None], size=size, mode="bilinear", align_corners=False)[0] > 0).numpy()


def sample_logits(h: int, w: int, seed: int) -> torch.Tensor:
    """Maps with small blobs, masks touching every border, an empty one and a NaN one (no prediction)."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(10, h, w, generator=g) * 4 - 7  # sparse positive cells
    logits[0] = float("nan")
    logits[1] = -1.0
    logits[2, 0, 0] = 9.0  # top-left corner
    logits[3, -1, -1] = 9.0  # bottom-right corner
    logits[4, :, -1] = 5.0  # right column
    logits[5, h // 2, :] = 3.0  # a full row
    logits[6] = 1.0  # all on
    logits[7] = -0.5  # lone interior cells: on well beyond their own cell, into the neighbours'
    logits[7, h // 2, w // 2] = logits[7, 1, 2] = 9.0
    logits[8] = -9.0  # a weak cell at the bottom-right border: on only if the border is clamped, not padded
    logits[8, -1, -1] = 0.2
    return logits


@pytest.mark.parametrize(
    ("h", "w", "size"),
    [
        (45, 80, (360, 640)),  # integer scale 8: cropped
        (45, 80, (720, 1280)),  # 16: cropped
        (13, 19, (39, 57)),  # 3: cropped
        (13, 19, (160, 240)),  # not a multiple: whole maps
        (7, 9, (7, 9)),  # scale 1
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_same_masks_as_resizing_whole_maps(h, w, size, seed):
    logits = sample_logits(h, w, seed)
    ours, ref = threshold_resized(logits, size), whole_map(logits, size)
    assert ours.shape == ref.shape == (10, *size)
    # Only logits within float rounding of 0 may differ; these seeded maps have none.
    assert (ours != ref).sum() == 0
    assert not ours[0].any() and not ours[1].any() and ours[6].all()
    assert ours[2, 0, 0] and ours[3, -1, -1] and ours[4, :, -1].all()
    sy, sx = size[0] / h, size[1] / w
    assert ours[7].sum() > 1.5 * sy * sx  # the two cells' masks spill over into their neighbours
    assert ours[8, -1, -1]
    assert encode_masks(ours) == encode_masks(ref)
