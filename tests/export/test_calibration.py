"""Calibration frames for int8: windows spread over one video, or shared out over a folder of videos."""

from __future__ import annotations

import pytest
import torch
from tiny import tiny_model

from ifc_sdk.data.synthetic import generate_dataset
from ifc_sdk.errors import VideoError
from ifc_sdk.export.calibration import _share, calibration_set, calibration_sources
from ifc_sdk.export.graphs import STATE_NAMES


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Three synthetic videos of 8 frames of 40 x 56, as frame folders under ``JPEGImages``."""
    data = tmp_path_factory.mktemp("calib") / "data"
    generate_dataset(data, num_videos=3, seed=5, num_frames=8, height=40, width=56)
    return data / "JPEGImages"


@pytest.mark.parametrize(
    ("windows", "videos", "shares"),
    [(6, 1, [6]), (4, 3, [2, 1, 1]), (6, 3, [2, 2, 2]), (2, 5, [1, 0, 1, 0, 0]), (1, 3, [1, 0, 0])],
)
def test_windows_are_shared_out_over_the_videos(windows, videos, shares):
    assert _share(windows, videos) == shares


def test_a_frame_folder_is_one_video_and_a_folder_of_them_is_each(videos):
    assert calibration_sources(videos / "video00001") == [videos / "video00001"]
    assert calibration_sources(videos) == [videos / f"video0000{i}" for i in range(3)]


def test_calibration_windows_come_from_every_video_of_a_folder(videos):
    cal = calibration_set(tiny_model(), videos, size=48, window=3, windows=4)
    assert cal.info == {
        "source": str(videos),
        "videos": 3,
        "windows": 4,
        "window": 3,
        "frames": 12,
        "size": [48, 67],
    }
    # Batches of 2 frames: 2 per window of 3 (2 + 1).
    assert [tuple(x.shape) for x in cal.frame_inputs] == [(2, 3, 48, 67), (1, 3, 48, 67)] * 4
    assert cal.window_inputs == []  # not asked for


def test_window_graph_inputs_are_the_fp32_frame_states_of_each_window(videos):
    model = tiny_model()
    cal = calibration_set(model, videos, size=48, window=3, windows=2, window_states=True)
    assert len(cal.window_inputs) == 2
    first = torch.cat(cal.frame_inputs[:2])  # the first window's 3 normalised frames
    feats = model.backbone_features(first)
    states = model.frame_states(feats["res3"], feats["res4"], feats["res5"])
    for name, tensor in zip(STATE_NAMES, cal.window_inputs[0]):
        assert tensor.shape[0] == 3
        torch.testing.assert_close(tensor, states[name], rtol=1e-5, atol=1e-5)


def test_a_video_shorter_than_a_window_is_a_video_error(videos):
    with pytest.raises(VideoError, match="at least 9 frames"):
        calibration_set(tiny_model(), videos / "video00000", size=48, window=9, windows=1)
