"""A small hand-made `VideoResult` whose masks are known as dense arrays (the expected values of tests), and
helpers to write a lossless clip and to count how often videos are decoded."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ifc_sdk.results import Track, VideoResult, encode_masks

H, W, T = 20, 30, 4
CATEGORIES = ["person", "bike", "dog"]
PROBS = {
    0: np.array([0.6, 0.3, 0.005, 0.095], np.float32),
    1: np.array([0.05, 0.85, 0.0, 0.1], np.float32),
    2: np.array([0.0, 0.0, 0.4, 0.6], np.float32),
}


def dense_masks() -> dict[int, np.ndarray]:
    """bool (T, H, W) masks per track id: 0 moves right, 1 overlaps it, 2 is in frames 1 and 3 only."""
    m = {k: np.zeros((T, H, W), bool) for k in range(3)}
    for t in range(T):
        m[0][t, 2:10, 3 + t : 12 + t] = True
        m[1][t, 6:16, 8:20] = True
    m[2][1, 15:19, 22:29] = True
    m[2][3, 0:3, 0:5] = True
    return m


def sample_result(**kwargs) -> VideoResult:
    tracks = []
    for k, masks in dense_masks().items():
        rles = encode_masks(masks)
        sparse = {t: rle for t, rle in enumerate(rles) if masks[t].any()}
        tracks.append(Track(k, PROBS[k], sparse, T, (H, W), CATEGORIES))
    options = dict(source=None, fps=10.0, timestamps=[0.1 * t for t in range(T)], categories=CATEGORIES)
    return VideoResult(tracks, num_frames=T, size=(H, W), **{**options, **kwargs})


def tight_box_xyxy(mask: np.ndarray) -> list[float]:
    """[x1, y1, x2, y2] of a 2-D mask, right/bottom edges exclusive."""
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def write_lossless(frames, path) -> Path:
    """FFV1 in Matroska (bgr0): decodes back to exactly ``frames`` (uint8 RGB)."""
    sys.path.insert(0, str(Path(__file__).parent / "io"))
    from make_videos import write_video

    return write_video(path, images=list(frames), codec="ffv1", pix_fmt="bgr0", rate=25)


def count_decodes(monkeypatch) -> list[str]:
    """Make every `VideoReader` iteration (one decoding pass) append the video's path to the returned list."""
    from ifc_sdk.io import video

    paths: list[str] = []
    real = video.VideoReader.__iter__

    def counting(self):
        paths.append(self.path)
        return real(self)

    monkeypatch.setattr(video.VideoReader, "__iter__", counting)
    return paths
