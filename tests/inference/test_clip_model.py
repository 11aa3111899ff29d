"""The clip-model protocol: the eager adapter reproduces the model, and VideoSegmenter runs any ClipModel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny import tiny_model

from ifc_sdk.errors import ConfigError
from ifc_sdk.inference.clip_model import ClipModel, EagerClipModel, as_clip_model
from ifc_sdk.inference.predictor import VideoSegmenter, collect, segment_frames
from ifc_sdk.inference.preprocess import resized_shape


class RuntimeLikeClipModel:
    """A ClipModel that is not an IFC: it hands back tensors rebuilt from numpy arrays, as a runtime backend
    (ONNX Runtime, OpenVINO) does, and records what the segmenter asks of it."""

    def __init__(self, eager: EagerClipModel) -> None:
        self.eager = eager
        self.config = eager.config
        self.device = torch.device("cpu")
        self.prepared = 0
        self.images: list[tuple[torch.dtype, tuple[int, ...]]] = []
        self.windows: list[int] = []

    def prepare(self) -> None:
        self.prepared += 1
        self.eager.prepare()

    def frame_states(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        self.images.append((images.dtype, tuple(images.shape)))
        return {k: torch.from_numpy(v.numpy().copy()) for k, v in self.eager.frame_states(images).items()}

    def window_heads(
        self, states: dict[str, torch.Tensor], num_frames: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.windows.append(num_frames)
        logits, masks = self.eager.window_heads(states, num_frames)
        return torch.from_numpy(logits.numpy().copy()), torch.from_numpy(masks.numpy().copy())


def frames(n: int = 7, height: int = 48, width: int = 64) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (n, height, width, 3), dtype=np.uint8)


def test_as_clip_model_wraps_an_ifc_and_passes_a_clip_model_through():
    m = tiny_model()
    eager = as_clip_model(m)
    assert isinstance(eager, EagerClipModel) and isinstance(eager, ClipModel)
    assert eager.model is m and eager.frame_chunk is None and eager.config is m.config
    fake = RuntimeLikeClipModel(eager)
    assert isinstance(fake, ClipModel) and as_clip_model(fake) is fake
    assert not isinstance(m, ClipModel)
    with pytest.raises(ConfigError, match="IFC or a ClipModel"):
        as_clip_model(object())
    with pytest.raises(ConfigError, match="IFC or a ClipModel"):
        VideoSegmenter(m.state_dict(), window=2)


@pytest.mark.parametrize("dilation", [1, 2])
@torch.inference_mode()
def test_eager_window_heads_equal_forward_clips(dilation):
    """frame_states + window_heads (res5's size derived from the states) = the whole model on backbone
    features, for odd frame sizes (rounding at every stride) and a dilated res5 alike."""
    m = tiny_model(res5_dilation=dilation)
    clip = EagerClipModel(m)
    images = torch.from_numpy(frames(3, 45, 61)).permute(0, 3, 1, 2)  # (3, 3, 45, 61) uint8
    logits, masks = clip.window_heads(clip.frame_states(images), 3)
    feats = m.backbone_features(m.normalize(images))
    ref = m.forward_clips(feats["res3"], feats["res4"], feats["res5"], 3, aux=False)
    assert logits.shape == (6, m.num_classes + 1) and masks.shape == (6, 3, 6, 8)
    assert torch.equal(logits, ref["pred_logits"][0]) and torch.equal(masks, ref["pred_masks"][0])


def test_segmenter_runs_a_clip_model_that_is_not_an_ifc():
    m = tiny_model()
    video = frames()
    expected = segment_frames(m, video, window=3, stride=1, size=40, output_size=(30, 40))
    fake = RuntimeLikeClipModel(EagerClipModel(m, frame_chunk=2))
    seg = VideoSegmenter(fake, window=3, stride=1, size=40, output_size=(30, 40))
    got = collect(seg, seg.run(iter(video)))
    assert len(expected.tracks) >= 1 and any(t.frame_masks for t in expected.tracks)
    assert [t.id for t in got.tracks] == [t.id for t in expected.tracks]
    assert [t.frame_masks for t in got.tracks] == [t.frame_masks for t in expected.tracks]
    np.testing.assert_array_equal(
        [t.class_probs for t in got.tracks], [t.class_probs for t in expected.tracks]
    )
    # What the protocol promises a backend: uint8 frames at network size, each frame's states computed once,
    # one call per window (5 windows of 3 frames over 7 frames at stride 1), prepare once per video.
    size = resized_shape(48, 64, 40)
    assert {(dtype, shape[1:]) for dtype, shape in fake.images} == {(torch.uint8, (3, *size))}
    assert sum(shape[0] for _, shape in fake.images) == 7
    assert fake.windows == [3] * 5 and fake.prepared == 1


def test_segmenter_runs_per_frame_head_parts_in_backbone_batches_on_the_cpu_only():
    seg = VideoSegmenter(tiny_model(), window=4, batch_frames=3)
    assert isinstance(seg.model, EagerClipModel) and seg.model.frame_chunk == 3
    seg = VideoSegmenter(tiny_model().to("meta"), window=4)  # an accelerator: whole windows at once
    assert seg.batch_frames == 16 and seg.model.frame_chunk is None
