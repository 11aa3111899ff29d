"""Windowing and tracking semantics on small synthetic inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny import tiny_model

from ifc_sdk.errors import ConfigError
from ifc_sdk.inference.predictor import VideoSegmenter, segment_frames
from ifc_sdk.inference.tracker import ClipTracker


def clip_windows(length: int, window: int, stride: int) -> list[list[int]]:
    """The windows VideoSegmenter runs, recorded through the tracker."""
    seg = VideoSegmenter(tiny_model(), window=window, stride=stride, size=None)
    seen = []
    original = seg.tracker.add_clip
    seg.tracker.add_clip = lambda frames, m, c: seen.append(list(frames)) or original(frames, m, c)
    frames = np.zeros((length, 40, 48, 3), dtype=np.uint8)
    assert sum(1 for _ in seg.run(iter(frames))) == length
    return seen


@pytest.mark.parametrize(
    ("length", "window", "stride", "expected"),
    [
        (10, 4, 2, [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7], [6, 7, 8, 9]]),
        (10, 4, 4, [[0, 1, 2, 3], [4, 5, 6, 7], [6, 7, 8, 9]]),
        (5, 10, 1, [[0, 1, 2, 3, 4]]),
        (1, 3, 1, [[0]]),
        (4, 3, 1, [[0, 1, 2], [1, 2, 3]]),
    ],
)
def test_windows_follow_reference_schedule(length, window, stride, expected):
    assert clip_windows(length, window, stride) == expected


def one_hot_logits(labels: list[int], num_queries: int, num_classes: int = 3) -> torch.Tensor:
    logits = torch.full((num_queries, num_classes + 1), -10.0)
    logits[:, num_classes] = 10.0  # no-object
    for q, label in enumerate(labels):
        logits[q, num_classes] = -10.0
        logits[q, label] = 10.0
    return logits


def test_tracker_links_overlapping_instances_and_averages():
    tracker = ClipTracker(window=2)
    masks = torch.full((3, 2, 8, 8), -8.0)
    masks[0, :, :4] = 8.0  # instance in the top half
    masks[1, :, 4:] = 8.0  # instance in the bottom half
    assert tracker.add_clip([0, 1], masks, one_hot_logits([0, 1], 3)) == [0, 1]
    swapped = masks[[1, 0, 2]] * 0.5
    assert tracker.add_clip([1, 2], swapped, one_hot_logits([1, 0], 3)) == [1, 0]
    frames = {f: (ids, logits) for f, ids, logits in tracker.pop_frames()}
    ids, logits = frames[1]
    assert ids == [0, 1]
    # frame 1 is covered by both clips: the mean of 8 and 4 on the top half of track 0
    assert float(logits[0, 0, 0]) == pytest.approx(6.0)
    assert tracker.tracks[0].num_clips == 2


def test_more_than_fifty_tracks():
    """The reference crashes past 50 tracks; the SDK keeps going."""
    tracker = ClipTracker(window=1)
    masks = torch.full((10, 1, 4, 4), 5.0)
    for clip in range(8):  # no overlap between consecutive clips -> every instance opens a track
        tracker.add_clip([clip], masks, one_hot_logits([0] * 10, 10))
    assert len(tracker.tracks) == 80


@pytest.mark.parametrize(("window", "stride"), [(0, 1), (3, 0), (2, 3), (-1, 1)])
def test_bad_window_or_stride_raises(window, stride):
    with pytest.raises(ConfigError):
        VideoSegmenter(tiny_model(), window=window, stride=stride)


def test_bad_frames_raise_config_error():
    with pytest.raises(ConfigError, match="uint8"):
        segment_frames(tiny_model(), np.zeros((3, 8, 8, 3), dtype=np.float32), window=2)


def test_output_size_and_bgr_conversion():
    frames = np.random.default_rng(0).integers(0, 255, (4, 48, 64, 3), dtype=np.uint8)
    rgb = segment_frames(tiny_model(), frames, window=2, size=None, output_size=(30, 40))
    assert rgb.size == (30, 40) and rgb.num_frames == 4
    bgr_model = tiny_model(input_format="BGR")
    direct = segment_frames(bgr_model, frames, window=2, size=None)
    assert direct.size == (48, 64)
    # a BGR model given RGB frames must equal an RGB model with the same weights given BGR frames
    rgb_model = tiny_model()
    swapped = segment_frames(rgb_model, np.ascontiguousarray(frames[..., ::-1]), window=2, size=None)
    np.testing.assert_array_equal(
        [t.class_probs for t in direct.tracks], [t.class_probs for t in swapped.tracks]
    )
