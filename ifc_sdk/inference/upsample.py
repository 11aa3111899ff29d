"""Mask logits at stride 8 -> COCO RLEs of the thresholded masks at the output size, without the pixels.

The reference resizes each track's ``(h, w)`` logit map to the frame size (bilinear, ``align_corners=False``),
thresholds it at 0 and run-length encodes it down the columns (COCO order). `resized_mask_rles` gives the same
runs from the maps themselves:

- along x, the maps are resized to the output width only: the same weights and float operations as the
  reference's interpolation along x;
- along y, an output column samples the piecewise-linear profile through its ``h`` values. Between two cells
  of the same sign every sample has that sign; between cells ``a`` and ``b`` of different signs the samples
  change sign once, at the first sample past the zero crossing ``g + a / (a - b)``, whose index follows from
  the sample positions being affine in the index.

So the work grows with ``h`` values and the sign changes per column instead of ``H`` pixels, and no boolean
mask is made or walked pixel by pixel to encode it. Samples can differ from the reference's only where the
interpolated logit is within float rounding of 0, which the reference fixtures' tolerance allows. Measured on
a CPU: the demo model on a 720p clip at size 320 (scale 2.25), one thread, 6.6 s -> 0.6 s of mask output for
the whole clip (18.2 s -> 13.1 s end to end); on the random-weight benchmark model's noise masks (65 per frame,
~10k runs each, 36 frames at 360x640) about the same time as resizing whole maps at two threads (1.1-1.3 s),
30% more at one.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ifc_sdk.inference.rle import encode_masks_torch, rles_from_run_starts
from ifc_sdk.results import RLE


def _first_past(crossings: np.ndarray, rising: np.ndarray, cells: int, size: int, full: int) -> np.ndarray:
    """int64: for each zero crossing of a column profile (in cell units, ``>= 0``), the index of the first of
    the first ``size`` of ``full`` output samples past it, in ``[0, size]``: at a position ``> crossing``
    where the profile rises (a sample exactly at the crossing is 0, not ``> 0``), ``>= crossing`` where it
    falls; ``size`` when no kept sample is past it.

    Sample ``y`` is at ``max(scale * (y + 0.5) - 0.5, 0)`` with the reference's float32 ``scale = cells /
    full``; the clamped samples (at 0) are past no crossing, since crossings where the profile falls are > 0.
    """
    scale = np.float64(np.float32(cells) / np.float32(full))
    index = (crossings + 0.5) / scale - 0.5  # fractional sample index of the crossing
    below = np.floor(index)
    return np.clip(below + (rising | (index != below)), 0, size).astype(np.int64)


def resized_mask_rles(
    logits: torch.Tensor, size: tuple[int, int], covers: tuple[int, int] | None = None
) -> tuple[list[RLE], np.ndarray]:
    """``logits (n, h, w)`` float (a map all NaN = no prediction) -> the compressed COCO RLEs of the ``n``
    masks ``resize(logits, covers)[:, :size[0], :size[1]] > 0`` (bilinear, ``align_corners=False``) and their
    areas (int64 ``(n,)``). ``covers``: the output extent the maps span (default ``size``, the reference's
    straight resize; see `aligned_extent`)."""
    n, h, w = logits.shape
    height, width = size
    full_height, full_width = covers or size
    if n == 0:
        return [], np.zeros(0, dtype=np.int64)
    logits = logits.detach().cpu().float()
    nan = torch.isnan(logits)
    if (nan.any((1, 2)) & ~nan.all((1, 2))).any():  # NaN spreads through the interpolation: do it in full
        up = F.interpolate(logits[None], size=(full_height, full_width), mode="bilinear", align_corners=False)
        return encode_masks_torch(up[0, :, :height, :width] > 0)
    logits = logits.masked_fill(nan, -1.0)  # maps all NaN: empty, as in the reference
    # Along x, on the transposed maps (identity along y): each column's h values come out contiguous.
    columns = F.interpolate(
        logits.transpose(1, 2)[None], size=(full_width, h), mode="bilinear", align_corners=False
    )[0, :, :width].contiguous()  # (n, W, h)
    on = columns > 0
    # Sign changes between cells g and g + 1 of a column; in flat (track, x, g) order they are in COCO order.
    index = torch.nonzero((on[..., 1:] != on[..., :-1]).view(-1)).squeeze(1).numpy()
    column, g = np.divmod(index, max(h - 1, 1))  # column: track * W + x; the cells (g, g + 1)
    values = columns.view(-1).numpy()
    a = values[column * h + g].astype(np.float64)
    b = values[column * h + g + 1].astype(np.float64)
    y = _first_past(g + a / (a - b), a <= 0, h, height, full_height)
    # Changes before the first sample or after the last one give those samples their signs.
    flips_first = np.bincount(column[y == 0], minlength=n * width) % 2 == 1
    flips_last = np.bincount(column[y == height], minlength=n * width) % 2 == 1
    first = on[..., 0].reshape(-1).numpy() ^ flips_first  # (n * W,)
    last = on[..., -1].reshape(-1).numpy() ^ flips_last
    inside = (y > 0) & (y < height)
    key = column[inside] * height + y[inside]  # track * H * W + the pixel that starts a run, COCO order
    # Between one column's last sample and the next one's first.
    boundary = np.flatnonzero(first[1:] != last[:-1]) + 1
    boundary = boundary[boundary % width != 0]  # not across tracks
    key = np.insert(key, np.searchsorted(key, boundary * height), boundary * height)
    # Two changes between the same two samples (a cell too narrow for any sample) cancel out.
    if key.size and (same := key[1:] == key[:-1]).any():
        start = np.flatnonzero(np.concatenate(([True], ~same)))
        odd = np.diff(np.concatenate((start, [key.size]))) % 2 == 1
        key = key[start[odd]]
    pixels = height * width
    return rles_from_run_starts(key // pixels, key % pixels, first[::width], size)


def aligned_extent(
    cells: tuple[int, int], network: tuple[int, int], size: tuple[int, int]
) -> tuple[int, int]:
    """The output extent, in pixels of ``size``, that stride-8 maps of ``cells`` (``ceil(h/8), ceil(w/8)``)
    span for a network input of ``network`` (h, w): ``8 * cells`` input pixels, more than the input where it
    is not a multiple of 8. Resizing the maps to this extent and keeping the top-left ``size`` puts each cell
    over the pixels it saw; the reference resizes them straight to ``size``, which shifts masks towards the
    top-left, by up to 7 input pixels at the bottom and right edges."""
    (h, w), (net_h, net_w), (height, width) = cells, network, size
    return max(round(8 * h * height / net_h), height), max(round(8 * w * width / net_w), width)
