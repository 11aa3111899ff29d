"""Overlay videos: a `VideoResult` drawn over its frames (masks, boxes, labels, legend) and encoded.

The drawing is `ifc_sdk.results.plot.draw_frame` (also behind `VideoResult.plot`), the video is
`VideoResult.save_overlay`; this module gives them frames from anywhere (e.g. `open_video`). Colours are fixed per track id (`track_color`), so the same object keeps its colour through the
video and across the PNG mask export.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ifc_sdk.results import RLE, Track, VideoResult
from ifc_sdk.results.plot import draw_frame, track_color

__all__ = ["frame_rle", "render_frame", "track_color", "write_overlay"]


def frame_rle(track: Track, index: int) -> RLE | None:
    """The RLE of ``track`` in frame ``index``, None where the track has no (or an empty) mask."""
    return track.frame_masks.get(index)


def render_frame(
    image: np.ndarray, result: VideoResult, index: int, *, alpha: float = 0.5, font=None
) -> np.ndarray:
    """Draw frame ``index`` of ``result`` over ``image`` (uint8 ``(H, W, 3)`` RGB); returns a new array.

    Masks are resized with nearest neighbour when ``image`` differs from ``result.size``; higher-score
    tracks are on top where masks overlap; labels never cover each other; a legend lists the instances.
    """
    return draw_frame(
        image, result.frames[index], alpha=alpha, font=font, score_threshold=result.score_threshold
    )


def write_overlay(
    result: VideoResult,
    frames: Iterable[np.ndarray],
    path: str | os.PathLike,
    *,
    fps: float | None,
    alpha: float = 0.5,
    codec: str | None = None,
) -> Path:
    """Write ``frames`` with ``result`` drawn over them to a video file at ``path`` (atomically).

    ``frames`` are uint8 ``(H, W, 3)`` RGB arrays (or `Frame`s from `open_video`), at most
    ``result.num_frames`` of them, at ``fps`` (None: ``result.fps``, else 25); see `VideoResult.save_overlay`.
    """
    return result.save_overlay(path, frames, fps=fps, alpha=alpha, codec=codec)
