"""VideoSegmenter's release of finished frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny import tiny_model

from ifc_sdk.inference import predictor
from ifc_sdk.inference.predictor import segment_frames


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def test_frames_released_together_are_encoded_on_several_threads_in_order(threads, monkeypatch):
    """A window that ends the video releases all its frames at once; with several torch threads their masks
    are encoded side by side. The result is the same, frame by frame, as encoding them one after another
    (the same compute: two torch threads both times; only the encoding's thread count is changed)."""
    video = np.random.default_rng(3).integers(0, 255, (9, 48, 64, 3), dtype=np.uint8)
    pools = []

    class Recorded(predictor.ThreadPoolExecutor):
        def __init__(self, workers, **kwargs):
            pools.append(workers)
            super().__init__(workers, **kwargs)

    monkeypatch.setattr(predictor, "ThreadPoolExecutor", Recorded)
    threads(2)
    with monkeypatch.context() as serial:
        serial.setattr(predictor.torch, "get_num_threads", lambda: 1)
        one = segment_frames(tiny_model(), video, window=9, size=None)
    assert pools == []
    two = segment_frames(tiny_model(), video, window=9, size=None)
    assert pools == [2]  # one pool, for the single window's 9 frames
    assert sum(len(t.frame_masks) for t in one.tracks) > 9  # non-empty masks in more than one track-frame
    assert [t.frame_masks for t in two.tracks] == [t.frame_masks for t in one.tracks]
    assert [t.id for t in two.tracks] == [t.id for t in one.tracks]
    np.testing.assert_array_equal([t.class_probs for t in two.tracks], [t.class_probs for t in one.tracks])
