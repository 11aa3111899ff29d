"""VideoResult through the public API: thresholds, filter, keep_frames + save_overlay, stream track names."""

from __future__ import annotations

import av
import numpy as np
import pytest
from results_sample import T, count_decodes, sample_result, write_lossless
from tiny import tiny_model

import ifc_sdk
from ifc_sdk.errors import ConfigError
from ifc_sdk.io import video


@pytest.mark.parametrize("threshold", [float("nan"), -0.1, 1.5, True, "0.5", None])
def test_predictions_threshold_outside_0_1_is_a_config_error(threshold):
    with pytest.raises(ConfigError, match="threshold must be a probability in \\[0, 1\\]"):
        sample_result().predictions(threshold=threshold)


def test_predictions_threshold_bounds_are_accepted():
    result = sample_result()
    assert [(p.track_id, p.label) for p in result.predictions(threshold=0.0)] == [
        (0, 0),
        (0, 1),
        (0, 2),
        (1, 0),
        (1, 1),
        (2, 2),
    ]
    assert result.predictions(threshold=1.0) == []
    assert [(p.track_id, p.label) for p in result.predictions(threshold=np.float32(0.5))] == [(0, 0), (1, 1)]


def test_filter_keeps_ids_and_records_the_threshold():
    result = sample_result()
    kept = result.filter(0.5)
    assert [t.id for t in kept.tracks] == [0, 1] and kept.score_threshold == 0.5
    assert [t.id for t in result.tracks] == [0, 1, 2] and result.score_threshold is None  # not modified
    # multi-class predictions below the threshold are dropped too: every output holds scores >= 0.5
    assert [(p.track_id, p.label, round(p.score, 2)) for p in kept.predictions()] == [
        (0, 0, 0.6),
        (1, 1, 0.85),
    ]
    assert [f.track_ids for f in kept.frames] == [[0, 1]] * T
    with pytest.raises(ConfigError, match="score_threshold"):
        result.filter(2)


@pytest.fixture
def clip(tmp_path):
    frames = np.random.default_rng(1).integers(0, 255, (6, 36, 44, 3), dtype=np.uint8)
    return frames, write_lossless(frames, tmp_path / "clip.mkv")


@pytest.fixture
def decodes(monkeypatch):
    return count_decodes(monkeypatch)


def test_keep_frames_overlay_decodes_the_video_once(clip, tmp_path, decodes):
    frames, path = clip
    result = ifc_sdk.segment_video(path, tiny_model(), window=3, size=None, progress=False, keep_frames=True)
    assert len(result.images) == 6
    np.testing.assert_array_equal(np.stack(result.images), frames)
    np.testing.assert_array_equal(result.frames[2].image, frames[2])
    out = result.save_overlay(tmp_path / "overlay.mp4")
    assert decodes == [str(path)]  # segmenting only: the overlay drew on the kept frames
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 6


def test_save_overlay_without_kept_frames_needs_frames(clip, tmp_path, decodes):
    _, path = clip
    result = ifc_sdk.segment_video(path, tiny_model(), window=3, size=None, progress=False)
    assert result.images is None
    with pytest.raises(ConfigError, match="keep_frames=True, or pass frames=ifc_sdk.io.video.open_video"):
        result.save_overlay(tmp_path / "none.mp4")
    assert not (tmp_path / "none.mp4").exists()
    with video.open_video(path) as reader:
        out = result.save_overlay(tmp_path / "overlay.mp4", reader, fps=5)
    assert decodes == [str(path), str(path)]
    with video.open_video(out) as reader:
        assert len(list(reader)) == 6 and reader.fps == pytest.approx(5)


def test_stream_tracks_give_names_and_streamed_frames_keep_images(clip):
    frames, path = clip
    model = tiny_model(categories=list("abcde"))
    stream = ifc_sdk.segment_video(
        path, model, window=3, size=None, progress=False, stream=True, keep_frames=True
    )
    seen = []
    for frame in stream:
        np.testing.assert_array_equal(frame.image, frames[frame.index])
        seen.append(frame)
        if frame.index == 1:
            assert all(t.provisional for t in stream.tracks)
    assert stream.tracks, "the tiny model is expected to open tracks on random frames"
    for summary in stream.tracks:
        probs = summary.class_probs[:-1]
        assert summary.label == int(np.argmax(probs)) and summary.name == "abcde"[summary.label]
        assert summary.score == pytest.approx(float(probs.max())) and not summary.provisional
    last = seen[-1]
    assert not last.provisional and last.names == [stream.tracks[t].name for t in last.track_ids]
