"""Per-frame views: `VideoResult.frames` and streamed `FrameInstances` (labels, names, scores, boxes, masks)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from results_sample import H, T, W, dense_masks, sample_result, tight_box_xyxy
from tiny import tiny_model

from ifc_sdk.inference.predictor import VideoSegmenter, collect
from ifc_sdk.results import FrameInstances, FrameKeeper, encode_masks


def test_frame_view_gives_ids_labels_names_scores_boxes_and_masks():
    result = sample_result()
    masks = dense_masks()
    assert len(result.frames) == T
    frame = result.frames[1]
    assert frame.index == 1 and frame.timestamp == pytest.approx(0.1) and not frame.provisional
    assert frame.track_ids == [0, 1, 2]
    assert frame.labels.tolist() == [0, 1, 2]  # argmax without the no-object entry
    assert frame.names == ["person", "bike", "dog"]
    np.testing.assert_array_equal(frame.scores, np.float32([0.6, 0.85, 0.4]))
    assert frame.scores.dtype == np.float32 and frame.labels.dtype == np.int64
    expected_xyxy = [tight_box_xyxy(masks[k][1]) for k in range(3)]
    np.testing.assert_array_equal(frame.boxes_xyxy, np.float32(expected_xyxy))
    np.testing.assert_array_equal(frame.boxes[:, 2:], frame.boxes_xyxy[:, 2:] - frame.boxes_xyxy[:, :2])
    np.testing.assert_array_equal(frame.mask_array(), np.stack([masks[k][1] for k in range(3)]))
    assert frame.areas.tolist() == [int(masks[k][1].sum()) for k in range(3)]
    # frame 0: track 2 is absent
    assert result.frames[0].track_ids == [0, 1]
    assert result.frames[-1].index == T - 1
    assert [f.index for f in result.frames] == list(range(T))
    assert [f.index for f in result.frames[1:3]] == [1, 2]
    with pytest.raises(IndexError, match="out of range"):
        result.frames[T]


def test_frame_without_instances_has_empty_arrays_of_the_right_shape():
    result = sample_result()
    result.tracks = []
    frame = result.frames[0]
    assert len(frame) == 0 and frame.names == []
    assert frame.mask_array().shape == (0, H, W)
    assert frame.boxes_xyxy.shape == (0, 4) and frame.labels.shape == (0,)


def test_frame_fields_must_agree_in_length():
    rle = encode_masks(np.ones((1, 2, 2), bool))
    with pytest.raises(ValueError, match="for each of the 1 track ids"):
        FrameInstances(0, [3], rle)  # labels, scores and names missing


def test_track_boxes_xyxy_beside_xywh():
    result = sample_result()
    masks = dense_masks()[2]
    track = result.tracks[2]
    expected = np.zeros((T, 4), np.float32)
    for t in (1, 3):
        expected[t] = tight_box_xyxy(masks[t])
    np.testing.assert_array_equal(track.boxes_xyxy, expected)
    np.testing.assert_array_equal(track.boxes[:, :2], expected[:, :2])
    np.testing.assert_array_equal(track.boxes[:, 2:], expected[:, 2:] - expected[:, :2])


def test_frame_keeper_keeps_images_within_a_budget():
    images = [np.full((2, 3, 3), i, np.uint8) for i in range(4)]  # 18 bytes each
    frames = [FrameInstances(i, [], [], image=images[i]) for i in range(4)]
    keeper = FrameKeeper(frames)
    assert [f.index for f in keeper] == [0, 1, 2, 3]
    assert [int(im[0, 0, 0]) for im in keeper.images] == [0, 1, 2, 3]
    small = FrameKeeper(frames, max_bytes=3 * 18)
    assert len(list(small)) == 4 and small.images is None  # outgrew the budget: dropped, frames still pass


def _sharp_tiny_model():
    """A tiny random model whose class head is sharpened, so tracks exist and their scores move per window."""
    model = tiny_model(categories=list("abcde"))
    last = model.class_embed.layers[-1]
    with torch.no_grad():
        last.weight.mul_(8)
        last.bias[-1] -= 5
    return model


@pytest.fixture(scope="module")
def streamed():
    """Frames streamed by a `VideoSegmenter`, with the tracker's class probabilities when each was released."""
    torch.manual_seed(0)
    frames = np.random.default_rng(0).integers(0, 255, (7, 40, 48, 3), dtype=np.uint8)
    segmenter = VideoSegmenter(_sharp_tiny_model(), window=3, stride=1, size=None, keep_images=True)
    released = []
    for frame in segmenter.run(iter(frames)):
        released.append((frame, [t.class_probs.copy() for t in segmenter.tracks]))
    return frames, segmenter, released


def test_streamed_frames_carry_labels_scores_names_known_at_release(streamed):
    frames, segmenter, released = streamed
    assert [f.index for f, _ in released] == list(range(7))
    # window 3, stride 1: frames 0..3 are released before the last window, 4..6 with it
    assert [f.provisional for f, _ in released] == [True] * 4 + [False] * 3
    assert any(len(f) for f, _ in released)
    changed = 0
    for frame, probs_then in released:
        np.testing.assert_array_equal(frame.image, frames[frame.index])
        want = [probs_then[t][:-1] for t in frame.track_ids]
        assert frame.labels.tolist() == [int(np.argmax(p)) for p in want]
        np.testing.assert_array_equal(frame.scores, np.float32([p.max() for p in want]))
        assert frame.names == ["abcde"[int(np.argmax(p))] for p in want]
        final = [segmenter.tracks[t].class_probs[:-1].max() for t in frame.track_ids]
        changed += int(not np.array_equal(frame.scores, np.float32(final)))
        for box, mask in zip(frame.boxes_xyxy, frame.mask_array(), strict=True):
            assert box.tolist() == tight_box_xyxy(mask)
    assert changed > 0  # provisional scores did move before the end: the flag means something


def test_collected_result_frames_equal_final_stream(streamed):
    _, segmenter, released = streamed
    result = collect(segmenter, [f for f, _ in released])
    for (streamed_frame, _), frame in zip(released, result.frames, strict=True):
        assert frame.track_ids == streamed_frame.track_ids
        assert [m["counts"] for m in frame.masks] == [m["counts"] for m in streamed_frame.masks]
        assert frame.labels.tolist() == [result.tracks[t].label for t in frame.track_ids]
        assert not frame.provisional
