"""benchmarks.compare.mask_iou_between: video-level mask IoU of two results' tracks, computed on the RLEs."""

from __future__ import annotations

import numpy as np
import pytest
from results_sample import T, dense_masks, sample_result

from benchmarks.compare import mask_iou_between
from ifc_sdk.results import Track, VideoResult, encode_masks


def result_of(masks: dict[int, np.ndarray]) -> VideoResult:
    tracks = []
    for k, m in masks.items():
        sparse = {t: rle for t, rle in enumerate(encode_masks(m)) if m[t].any()}
        tracks.append(Track(k, np.array([0.9, 0.1], np.float32), sparse, T, m.shape[1:], None))
    return VideoResult(tracks, num_frames=T, size=next(iter(masks.values())).shape[1:])


def test_iou_of_shifted_and_missing_tracks():
    ref = dense_masks()  # tracks 0, 1, 2 (2 is in two frames only)
    other = {0: np.roll(ref[0], 1, axis=2), 1: ref[1].copy()}  # 0 shifted one column, 1 identical, 2 missing
    other[1][0] = False  # and 1 lost in frame 0
    out = mask_iou_between(sample_result(), result_of(other))
    # Expected IoUs from the dense arrays.
    ious = []
    for k in range(3):
        if k not in other:
            ious.append(0.0)
            continue
        ious.append((ref[k] & other[k]).sum() / (ref[k] | other[k]).sum())
    areas = np.array([ref[k].sum() for k in range(3)], np.float64)
    assert out["tracks"] == 3 and out["other_tracks"] == 2
    assert out["mask_iou_mean"] == pytest.approx(np.mean(ious), abs=1e-12)
    assert out["mask_iou"] == pytest.approx((np.array(ious) * areas).sum() / areas.sum(), abs=1e-12)
    assert out["matched"] == 2 and out["matched_iou_min"] == pytest.approx(min(ious[:2]), abs=1e-12)
    assert ious[0] == pytest.approx(64 / 80) and ious[1] == pytest.approx(0.75)


def test_identical_results_and_empty_other():
    assert mask_iou_between(sample_result(), sample_result())["mask_iou"] == 1.0
    empty = mask_iou_between(sample_result(), VideoResult([], num_frames=T, size=(20, 30)))
    assert empty["mask_iou"] == 0.0 and empty["matched"] == 0
