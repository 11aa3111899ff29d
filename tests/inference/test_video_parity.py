"""Full-video parity with the reference for every window/stride case in the fixtures."""

from __future__ import annotations

import numpy as np
import pytest
from reference import assert_matches_reference, model, rgb_frames, run_video, video_runs


@pytest.mark.parametrize(("name", "run"), video_runs())
def test_segment_frames_matches_reference(name, run):
    assert_matches_reference(run_video(name, run), name, run)


def test_streaming_equals_in_memory():
    """Feeding frames one by one through a generator gives exactly the in-memory result."""
    from ifc_sdk.inference.predictor import VideoSegmenter, collect, segment_frames

    m = model("r50_seed0")
    frames = rgb_frames("r50_seed0")
    full = segment_frames(m, frames, window=4, stride=2, size=None)
    seg = VideoSegmenter(m, window=4, stride=2, size=None)
    streamed = collect(seg, seg.run(f for f in frames))
    assert [t.frame_masks for t in streamed.tracks] == [t.frame_masks for t in full.tracks]
    np.testing.assert_array_equal(
        [t.class_probs for t in streamed.tracks], [t.class_probs for t in full.tracks]
    )
