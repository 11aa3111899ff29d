"""Full-video parity with the reference for every window/stride case in the fixtures."""

from __future__ import annotations

import numpy as np
import pytest
from reference import meta, model, rgb_frames, tensors, unpack_masks, video_runs


@pytest.mark.parametrize(("name", "run"), video_runs())
def test_segment_frames_matches_reference(name, run):
    info = meta()["models"][name]
    spec = info["video_runs"][run]
    ref = tensors(spec["file"])
    height, width = info["video"]["height"], info["video"]["width"]

    result = model(name).segment_frames(
        rgb_frames(name),
        window=spec["window_T"],
        stride=spec["clip_stride"],
        size=None,
        output_size=(height, width),
    )

    assert len(result.tracks) == spec["num_tracks"]
    np.testing.assert_allclose(
        np.stack([t.class_probs for t in result.tracks]), ref["track_cls"].numpy(), rtol=1e-5, atol=1e-7
    )
    preds = result.predictions(multi_class=True, threshold=0.01)
    assert len(preds) == spec["num_outputs"]
    assert [p["label"] for p in preds] == ref["pred_labels"].tolist()
    np.testing.assert_allclose([p["score"] for p in preds], ref["pred_scores"].numpy(), rtol=1e-5, atol=1e-6)
    ref_masks = unpack_masks(ref["result_masks_packed"], width)
    for pred, row in zip(preds, ref["pred_track_idx"].tolist()):
        assert pred.track_id == row
        mine = pred["masks"]
        assert mine.shape == ref_masks[row].shape
        union = (mine | ref_masks[row]).sum()
        iou = (mine & ref_masks[row]).sum() / union if union else 1.0
        assert iou >= 0.999


def test_streaming_equals_in_memory():
    """Feeding frames one by one through a generator gives exactly the in-memory result."""
    from ifc_sdk.inference.predictor import VideoSegmenter, collect

    m = model("r50_seed0")
    frames = rgb_frames("r50_seed0")
    full = m.segment_frames(frames, window=4, stride=2, size=None)
    seg = VideoSegmenter(m, window=4, stride=2, size=None)
    streamed = collect(seg, seg.run(f for f in frames))
    assert [t.frame_masks for t in streamed.tracks] == [t.frame_masks for t in full.tracks]
    np.testing.assert_array_equal(
        [t.class_probs for t in streamed.tracks], [t.class_probs for t in full.tracks]
    )
