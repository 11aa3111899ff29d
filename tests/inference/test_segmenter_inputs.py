"""VideoSegmenter / segment_frames refuse bad settings and frames with a ConfigError before any compute."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny import tiny_model

from ifc_sdk.errors import ConfigError
from ifc_sdk.inference.clip_model import EagerClipModel
from ifc_sdk.inference.predictor import VideoSegmenter, check_window, segment_frames


class NoComputeClipModel(EagerClipModel):
    """Fails the test if the segmenter asks for any compute."""

    def frame_states(self, images):
        raise AssertionError("frame_states ran before the input was checked")

    def window_heads(self, states, num_frames):
        raise AssertionError("window_heads ran before the input was checked")


def frames(n: int = 3, height: int = 24, width: int = 32) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (n, height, width, 3), dtype=np.uint8)


def test_window_and_stride_accept_numpy_integers():
    assert check_window(np.int64(5), np.int32(2)) == (5, 2)
    seg = VideoSegmenter(tiny_model(), window=np.int64(3), stride=np.int64(2), size=None)
    assert (seg.window, seg.stride) == (3, 2) and type(seg.window) is int and type(seg.stride) is int


@pytest.mark.parametrize(("window", "stride"), [(True, 1), (3, True), (np.bool_(True), 1)])
def test_window_and_stride_refuse_bools(window, stride):
    with pytest.raises(ConfigError, match="window|stride"):
        VideoSegmenter(tiny_model(), window=window, stride=stride)


@pytest.mark.parametrize("size", [0, -1, 2.5, True, "360", np.float64(360.0)])
def test_size_must_be_a_positive_integer(size):
    with pytest.raises(ConfigError, match="size must be a positive"):
        VideoSegmenter(tiny_model(), window=2, size=size)


def test_size_accepts_none_and_numpy_integers():
    assert VideoSegmenter(tiny_model(), window=2, size=None).size is None
    assert VideoSegmenter(tiny_model(), window=2, size=np.int64(96)).size == 96


@pytest.mark.parametrize("batch_frames", [0, True, 2.0])
def test_batch_frames_must_be_a_positive_integer(batch_frames):
    with pytest.raises(ConfigError, match="batch_frames"):
        VideoSegmenter(tiny_model(), window=2, batch_frames=batch_frames)


@pytest.mark.parametrize(
    "output_size", [(0, 40), (30, -1), (30.5, 40), (True, 40), (30,), (30, 40, 3), 30, "ab"]
)
def test_output_size_is_checked_before_any_compute(output_size):
    with pytest.raises(ConfigError, match="output_size"):
        segment_frames(NoComputeClipModel(tiny_model()), frames(), window=2, output_size=output_size)


def test_output_size_accepts_numpy_integers():
    seg = VideoSegmenter(tiny_model(), window=2, output_size=np.array([30, 40]))
    assert seg.output_size == (30, 40)


@pytest.mark.parametrize("shape", [(3, 0, 0, 3), (3, 0, 32, 3), (3, 24, 0, 3)])
def test_empty_frames_are_a_config_error(shape):
    with pytest.raises(ConfigError, match="empty"):
        segment_frames(NoComputeClipModel(tiny_model()), np.zeros(shape, np.uint8), window=2)


def test_frame_tensors_in_hwc_equal_numpy_and_chw_is_refused():
    video = frames()
    expected = segment_frames(tiny_model(), video, window=2, size=None)
    from_tensor = segment_frames(tiny_model(), torch.from_numpy(video), window=2, size=None)
    assert [t.frame_masks for t in from_tensor.tracks] == [t.frame_masks for t in expected.tracks]
    np.testing.assert_array_equal(
        [t.class_probs for t in from_tensor.tracks], [t.class_probs for t in expected.tracks]
    )
    chw = torch.from_numpy(video).permute(0, 3, 1, 2)
    with pytest.raises(ConfigError, match=r"\(T, H, W, 3\)"):
        segment_frames(NoComputeClipModel(tiny_model()), chw, window=2)
