"""Mask RLEs from the crossings of the logit profiles: the runs of resizing each whole map and thresholding it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils

from ifc_sdk.inference.upsample import aligned_extent, resized_mask_rles
from ifc_sdk.results import decode_masks, encode_masks


def whole_map(logits: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, list]:
    """The reference: every map resized to ``size`` (bilinear), ``> 0``, encoded; and the resized values."""
    up = F.interpolate(logits[None], size=size, mode="bilinear", align_corners=False)[0]
    return up, encode_masks((up > 0).numpy())


def sample_logits(h: int, w: int, seed: int) -> torch.Tensor:
    """Maps with small blobs, masks touching every border, an empty one and a NaN one (no prediction)."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(12, h, w, generator=g) * 4 - 7  # sparse positive cells
    logits[0] = float("nan")
    logits[1] = -1.0
    logits[2, 0, 0] = 9.0  # top-left corner
    logits[3, -1, -1] = 9.0  # bottom-right corner
    logits[4, :, -1] = 5.0  # right column
    logits[5, h // 2, :] = 3.0  # a full row
    logits[6] = 1.0  # all on
    logits[7] = -0.5  # lone interior cells: on well beyond their own cell, into the neighbours'
    logits[7, h // 2, w // 2] = logits[7, min(1, h - 1), min(2, w - 1)] = 9.0
    logits[8] = -9.0  # a weak cell at the bottom-right border: on only if the border is clamped, not padded
    logits[8, -1, -1] = 0.2
    logits[9] = torch.randn(h, w, generator=g)  # noise: a sign change at most cells
    logits[10, :, 0] = 0.0  # exactly 0 is off
    logits[11] = 2.0 * torch.randn(h, w, generator=g) + 1.0
    return logits


def assert_same_runs(logits: torch.Tensor, size: tuple[int, int]) -> list:
    up, ref = whole_map(logits, size)
    ours, areas = resized_mask_rles(logits, size)
    assert len(ours) == logits.shape[0]
    assert all(r["size"] == list(size) for r in ours)
    np.testing.assert_array_equal(areas, mask_utils.area(ours))
    # Only samples within float rounding of 0 may differ.
    differ = decode_masks(ours) != decode_masks(ref)
    assert differ.sum() <= 1 and np.abs(up.numpy()[differ]).max(initial=0.0) < 1e-5
    return ours


@pytest.mark.parametrize(
    ("h", "w", "size"),
    [
        (45, 80, (360, 640)),  # stride 8 at size 360 on a 360p video
        (45, 80, (720, 1280)),  # 720p: scale 16
        (40, 57, (720, 1280)),  # size 320 on 720p: scale 2.25 x 2.246
        (13, 19, (39, 57)),  # odd scale 3: a sample exactly on each cell
        (13, 19, (160, 240)),  # not a multiple
        (7, 9, (7, 9)),  # scale 1
        (20, 30, (9, 13)),  # smaller: samples skip cells
        (1, 5, (8, 40)),  # one row
        (5, 1, (40, 8)),  # one column
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_same_runs_as_resizing_whole_maps(h, w, size, seed):
    ours = decode_masks(assert_same_runs(sample_logits(h, w, seed), size))
    assert ours.shape == (12, *size)
    assert not ours[0].any() and not ours[1].any() and ours[6].all() and not ours[10, :, 0].any()
    assert 0 < ours[9].mean() < 1
    if size[0] >= h and size[1] >= w:  # every cell is sampled
        assert ours[2, 0, 0] and ours[3, -1, -1] and ours[4, :, -1].all()
    if size[0] > h and size[1] > w:
        assert ours[7].sum() > 1.5 * (size[0] / h) * (size[1] / w)  # spills over into the neighbours
        assert ours[8, -1, -1]


def test_a_cell_between_two_samples_is_not_seen():
    # 30 cells sampled 7 times (positions 1.64, 5.93, ...): cell 3 is on, but no sample falls between its
    # crossings (2.5 and 3.5), which cancel; the same mask as the reference, empty.
    logits = torch.full((2, 30, 4), -1.0)
    logits[0, 3] = 1.0
    logits[1, 1:3] = 1.0  # seen by sample 0 (between cells 1 and 2)
    ours = decode_masks(assert_same_runs(logits, (7, 4)))
    assert not ours[0].any()
    assert ours[1, 0].all() and ours[1].sum() == 4


def test_partly_nan_maps_and_no_maps():
    logits = torch.randn(3, 9, 11, generator=torch.Generator().manual_seed(5))
    logits[1, 4, 5] = float("nan")  # NaN reaches every sample interpolating it: the whole-map path
    up, ref = whole_map(logits, (36, 44))
    assert resized_mask_rles(logits, (36, 44))[0] == ref  # the same path: byte for byte
    assert not decode_masks(ref)[1, 16:20, 20:24].any()
    rles, areas = resized_mask_rles(torch.zeros(0, 9, 11), (36, 44))
    assert rles == [] and areas.shape == (0,)


@pytest.mark.parametrize("seed", range(6))
def test_random_maps_differ_only_within_rounding_of_zero(seed):
    g = torch.Generator().manual_seed(100 + seed)
    h, w = int(torch.randint(2, 30, (1,), generator=g)), int(torch.randint(2, 30, (1,), generator=g))
    size = (int(torch.randint(1, 200, (1,), generator=g)), int(torch.randint(1, 200, (1,), generator=g)))
    logits = torch.randn(8, h, w, generator=g) * 3
    up, ref = whole_map(logits, size)
    ours = decode_masks(resized_mask_rles(logits, size)[0])
    differ = ours != decode_masks(ref)
    assert np.abs(up.numpy()[differ]).max(initial=0.0) < 1e-5
    assert differ.sum() <= 2


@pytest.mark.parametrize(
    ("h", "w", "size", "covers"),
    [
        (36, 51, (160, 224), (160, 227)),  # size 288 on 160x224: 403 input columns, 408 seen
        (40, 72, (720, 1280), (720, 1296)),  # size 320 on 720p: 569 input columns, 576 seen
        (13, 19, (39, 57), (45, 60)),  # both sides cropped
        (7, 9, (7, 9), (7, 9)),  # nothing to crop: the reference's resize
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_maps_spanning_more_than_the_output_are_cropped(h, w, size, covers, seed):
    logits = sample_logits(h, w, seed)
    logits[0] = 0.5  # no NaN map here: the crossing path throughout
    up = F.interpolate(logits[None], size=covers, mode="bilinear", align_corners=False)[
        0, :, : size[0], : size[1]
    ]
    ours, areas = resized_mask_rles(logits, size, covers)
    assert all(r["size"] == list(size) for r in ours)
    np.testing.assert_array_equal(areas, mask_utils.area(ours))
    differ = decode_masks(ours) != (up > 0).numpy()
    assert differ.sum() <= 1 and np.abs(up.numpy()[differ]).max(initial=0.0) < 1e-5
    nan = logits.clone()
    nan[1, 2, 3] = float("nan")  # the whole-map path crops the same way
    up = F.interpolate(nan[None], size=covers, mode="bilinear", align_corners=False)[
        0, :, : size[0], : size[1]
    ]
    np.testing.assert_array_equal(decode_masks(resized_mask_rles(nan, size, covers)[0]), (up > 0).numpy())


def test_aligned_extent_is_what_the_stride_8_cells_saw():
    # 160x224 frames at size 288 -> 288x403 input; ceil(/8) = 36x51 cells see 288x408 input pixels, which are
    # 160 x 408 * 224 / 403 = 226.8 output pixels.
    assert aligned_extent((36, 51), (288, 403), (160, 224)) == (160, 227)
    assert aligned_extent((40, 56), (320, 448), (160, 224)) == (160, 224)  # multiples of 8: no change
    assert aligned_extent((40, 72), (320, 569), (720, 1280)) == (720, 1296)  # 576 * 1280 / 569 = 1295.7
