"""Encode a video of a `VideoResult` drawn over its frames (masks, boxes, labels, legend).

Drawing one frame is `ifc_sdk.results.plot.draw_frame` (also behind `VideoResult.plot`); colours are fixed
per track id (`track_color`), so the same object keeps its colour through the video and across the PNG mask
export.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ifc_sdk.errors import ConfigError
from ifc_sdk.io.atomic import atomic_path
from ifc_sdk.io.export import sweep_stale
from ifc_sdk.results import RLE, Track, VideoResult
from ifc_sdk.results.plot import default_font, draw_frame, track_color

__all__ = ["frame_rle", "render_frame", "track_color", "write_overlay"]

_DEFAULT_FPS = 25.0


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


def _pick_codec(codec: str | None) -> str:
    if codec is not None:
        if codec not in av.codecs_available:
            raise ConfigError(
                f"codec: expected an encoder FFmpeg provides (e.g. libx264, mpeg4), got {codec!r}"
            )
        return codec
    for name in ("libx264", "mpeg4"):
        if name in av.codecs_available:
            try:
                av.codec.Codec(name, "w")
            except Exception:  # pragma: no cover - listed but without an encoder
                continue
            return name
    raise ConfigError("no usable video encoder: expected libx264 or mpeg4 in this FFmpeg build")


def write_overlay(
    result: VideoResult,
    frames: Iterable[np.ndarray],
    path: str | os.PathLike,
    *,
    fps: float | None,
    alpha: float = 0.5,
    codec: str | None = None,
) -> Path:
    """Write ``frames`` with the result drawn over them to a video file at ``path`` (atomically).

    ``frames`` are uint8 ``(H, W, 3)`` RGB arrays (or `Frame`s from `open_video`), at most
    ``result.num_frames`` of them. Encodes H.264 (libx264, yuv420p) when available, else MPEG-4 Part 2, at
    ``fps`` (None: ``result.fps``, else 25); odd sizes are padded by one pixel to even. The container follows
    the suffix of ``path`` (``.mp4`` recommended). Returns ``path``.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha: expected a blending weight in [0, 1], got {alpha!r}")
    rate_value = fps if fps is not None else (result.fps or _DEFAULT_FPS)
    if not rate_value or rate_value <= 0:
        raise ConfigError(f"fps: expected a positive frame rate, got {rate_value!r}")
    rate = Fraction(rate_value).limit_denominator(100_000)
    codec_name = _pick_codec(codec)
    path = Path(path)
    suffix = path.suffix or ".mp4"
    sweep_stale(path)
    with atomic_path(path, suffix=suffix) as tmp:
        _encode(result, frames, tmp, rate, alpha, codec_name)
    return path


def _encode(
    result: VideoResult, frames: Iterable[np.ndarray], tmp: Path, rate: Fraction, alpha: float, codec: str
) -> None:
    with av.open(os.fspath(tmp), mode="w") as container:
        stream = None
        font = None
        size: tuple[int, int] | None = None
        count = 0
        for index, item in enumerate(frames):
            image = np.asarray(getattr(item, "image", item))
            if index >= result.num_frames:
                raise ConfigError(
                    f"frames: expected at most {result.num_frames} frames (result.num_frames); got more"
                )
            if size is None:
                size = image.shape[:2]
                font = default_font(size[0])
                stream = _add_stream(container, codec, rate, size)
            elif image.shape[:2] != size:
                raise ConfigError(
                    f"frame {index}: expected {size[1]}x{size[0]} like the first frame, got "
                    f"{image.shape[1] if image.ndim > 1 else '?'}x{image.shape[0]}"
                )
            drawn = render_frame(image, result, index, alpha=alpha, font=font)
            pad_h, pad_w = stream.height - size[0], stream.width - size[1]
            if pad_h or pad_w:
                drawn = np.pad(drawn, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(drawn), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
            count += 1
        if stream is None:
            raise ConfigError("frames: expected at least one frame to write, got none")
        for packet in stream.encode():
            container.mux(packet)


def _add_stream(container, codec: str, rate: Fraction, size: tuple[int, int]):
    height, width = size
    options = {"crf": "20", "preset": "veryfast"} if codec == "libx264" else {}
    stream = container.add_stream(codec, rate=rate, options=options)
    stream.width = width + (width % 2)
    stream.height = height + (height % 2)
    stream.pix_fmt = "yuv420p"
    stream.time_base = Fraction(1, 1) / rate
    if codec != "libx264":
        stream.bit_rate = int(
            max(1_000_000, min(50_000_000, stream.width * stream.height * float(rate) * 0.2))
        )
    return stream
