"""benchmarks/videos.py: the synthetic benchmark video is deterministic, written once and decoded whole."""

from __future__ import annotations

import numpy as np

from benchmarks.videos import decode_all, prepare_video, synthetic_frames, video_names


def test_synthetic_video_is_written_once_and_decodes_to_its_frames(tmp_path):
    frames = list(synthetic_frames(5, 32, 48))
    assert len(frames) == 5 and frames[0].shape == (32, 48, 3) and frames[0].dtype == np.uint8
    assert all(np.array_equal(a, b) for a, b in zip(frames, synthetic_frames(5, 32, 48)))  # seeded
    assert not np.array_equal(frames[0], frames[4])  # the shapes move
    path = prepare_video("synthetic", 5, 32, 48, tmp_path)
    assert path == tmp_path / "synthetic_5f_32x48.mp4"
    written = path.stat().st_mtime_ns
    assert prepare_video("synthetic", 5, 32, 48, tmp_path) == path and path.stat().st_mtime_ns == written
    decoded = decode_all(path)
    assert len(decoded) == 5 and decoded[0].shape == (32, 48, 3)
    # H.264 at crf 18 is lossy but close: mean absolute error of a few grey levels
    assert np.abs(np.stack(decoded).astype(int) - np.stack(frames)).mean() < 6


def test_video_names():
    assert video_names("all") == ["synthetic", "bigbuckbunny", "bikes", "carphone_pristine"]
    assert video_names("real") == ["bigbuckbunny", "bikes", "carphone_pristine"]
    assert video_names("synthetic,bikes") == ["synthetic", "bikes"]
