"""The speed-ups measured in benchmarks/ change how the work is scheduled, never the result (fp32, CPU):
per-frame states reused across windows, backbone batch size, and the device-side RLE encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference import model, rgb_frames, tensors

from ifc_sdk.inference.predictor import VideoSegmenter, collect
from ifc_sdk.inference.rle import encode_masks_torch
from ifc_sdk.results import encode_masks

NAME = "r50_seed0"


@torch.inference_mode()
def test_frame_states_reproduce_forward_clips_bit_for_bit():
    m = model(NAME)
    frames = tensors(f"{NAME}_input.safetensors")["frames"]  # network channel order
    feats = m.backbone_features(((frames.float() - m.pixel_mean) / m.pixel_std).contiguous())
    levels = ("res3", "res4", "res5")
    size5 = tuple(feats["res5"].shape[-2:])
    for chunk in (2, 3, 10):  # states computed in any grouping of frames
        parts = [m.frame_states(*(feats[k][i : i + chunk] for k in levels)) for i in range(0, 10, chunk)]
        states = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        for start, stop in ((0, 3), (2, 7), (0, 10)):
            ref = m.forward_clips(*(feats[k][start:stop] for k in levels), stop - start, aux=False)
            clip = {k: v[start:stop] for k, v in states.items()}
            for frame_chunk in (None, 2, 3):  # per-frame parts of the window in groups of frames
                got = m.forward_frame_states(clip, stop - start, size5, frame_chunk=frame_chunk)
                assert torch.equal(got["pred_logits"], ref["pred_logits"])
                assert torch.equal(got["pred_masks"], ref["pred_masks"])


def test_frame_slices_never_leave_a_single_frame_group():
    from ifc_sdk.modeling.transformer import frame_slices

    for n in range(1, 12):
        for chunk in (None, 1, 2, 3, 4):
            groups = frame_slices(n, chunk)
            assert [i for g in groups for i in range(g.start, g.stop)] == list(range(n))
            assert n == 1 or chunk == 1 or all(g.stop - g.start > 1 for g in groups)


@pytest.mark.parametrize(("window", "stride"), [(3, 1), (4, 2)])
def test_backbone_batch_size_does_not_change_results(window, stride):
    frames = rgb_frames(NAME)
    results = []
    for batch in (2, 3, 10):
        seg = VideoSegmenter(model(NAME), window=window, stride=stride, size=None, batch_frames=batch)
        results.append(collect(seg, seg.run(iter(frames))))
    for other in results[1:]:
        assert [t.frame_masks for t in other.tracks] == [t.frame_masks for t in results[0].tracks]
        np.testing.assert_array_equal(
            [t.class_probs for t in other.tracks], [t.class_probs for t in results[0].tracks]
        )


def test_device_rle_matches_pycocotools():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:45, :80]
    masks = [
        rng.random((4, 7, 5)) > 0.5,
        np.ones((2, 3, 4), bool),
        np.zeros((2, 3, 4), bool),
        np.stack([(yy - 10 - 5 * i) ** 2 + (xx - 40) ** 2 < 100 + 50 * i for i in range(3)]),
    ]
    for m in masks:
        rles, areas = encode_masks_torch(torch.from_numpy(m))
        assert rles == encode_masks(m)
        np.testing.assert_array_equal(areas, m.reshape(len(m), -1).sum(1))
    rles, areas = encode_masks_torch(torch.zeros(0, 3, 4, dtype=torch.bool))
    assert rles == [] and areas.shape == (0,)
