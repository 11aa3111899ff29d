"""Render a `VideoResult` over its frames (coloured masks, track id and class name) and encode a video.

Colours are fixed per track id (`track_color`), so the same object keeps its colour through the video and
across the PNG mask export.
"""

from __future__ import annotations

import colorsys
import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ifc_sdk.errors import ConfigError
from ifc_sdk.io.atomic import atomic_path
from ifc_sdk.results import RLE, Track, VideoResult, decode_masks

__all__ = ["frame_rle", "render_frame", "track_color", "write_overlay"]

_GOLDEN = 0.618033988749895
_DEFAULT_FPS = 25.0


def track_color(track_id: int) -> tuple[int, int, int]:
    """A distinct, fixed RGB colour for a track id (golden-ratio hues, alternating saturation/brightness)."""
    hue = (0.08 + track_id * _GOLDEN) % 1.0
    sat = (0.85, 0.6, 1.0)[track_id % 3]
    val = (1.0, 0.8, 0.9)[(track_id // 3) % 3]
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def frame_rle(track: Track, index: int) -> RLE | None:
    """The RLE of ``track`` in frame ``index``, None where the track has no (or an empty) mask.

    Reads the sparse per-frame masks when the track stores them (``frame_masks``) so that no full list of
    empty RLEs is built for every frame.
    """
    sparse = getattr(track, "frame_masks", None)
    if sparse is not None:
        return sparse.get(index)
    masks = track.masks
    return masks[index] if index < len(masks) else None


def _nearest_index(src: int, dst: int) -> np.ndarray:
    """Source indices sampling ``src`` pixels onto ``dst`` pixels, nearest neighbour at pixel centres."""
    return np.minimum(((np.arange(dst) + 0.5) * (src / dst)).astype(np.int64), src - 1)


def _resize_nearest(masks: np.ndarray, height: int, width: int) -> np.ndarray:
    if masks.shape[-2:] == (height, width):
        return masks
    rows = _nearest_index(masks.shape[-2], height)
    cols = _nearest_index(masks.shape[-1], width)
    return masks[:, rows][:, :, cols]


def _label_text(track: Track, result: VideoResult) -> str:
    name = track.label_name
    if name is None and result.categories is not None:
        name = result.categories[track.label]
    if name is None:
        name = f"class {track.label}"
    return f"#{track.id} {name} {track.score:.2f}"


def _font(height: int):
    size = max(10, min(32, height // 30))
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # pragma: no cover - Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def render_frame(
    image: np.ndarray, result: VideoResult, index: int, *, alpha: float = 0.5, font=None
) -> np.ndarray:
    """Draw the masks and labels of frame ``index`` over ``image`` (uint8 ``(H, W, 3)`` RGB); returns a copy.

    Masks are resized with nearest neighbour when ``image`` differs from ``result.size``. Higher-score tracks
    are painted last, so they are on top where masks overlap.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ConfigError(
            f"frame {index}: expected a uint8 (H, W, 3) RGB array, got {image.dtype} {image.shape}"
        )
    height, width = image.shape[:2]
    tracks, rles = [], []
    for track in result.tracks:
        rle = frame_rle(track, index)
        if rle is not None:
            tracks.append(track)
            rles.append(rle)
    out = image.astype(np.float32)
    labels: list[tuple[Track, np.ndarray]] = []
    if tracks:
        masks = _resize_nearest(decode_masks(rles), height, width)
        order = sorted(range(len(tracks)), key=lambda i: tracks[i].score)
        for i in order:
            mask = masks[i]
            if not mask.any():
                continue
            color = np.asarray(track_color(tracks[i].id), dtype=np.float32)
            out[mask] = out[mask] * (1.0 - alpha) + color * alpha
            labels.append((tracks[i], mask))
    canvas = Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))
    if labels:
        draw = ImageDraw.Draw(canvas)
        font = font or _font(height)
        for track, mask in labels:
            ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
            x0, y0 = int(xs[0]), int(ys[0])
            text = _label_text(track, result)
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            tw, th = right - left, bottom - top
            tx = min(max(x0, 0), max(width - tw - 4, 0))
            ty = y0 - th - 4 if y0 - th - 4 >= 0 else min(y0 + 1, max(height - th - 4, 0))
            color = track_color(track.id)
            ink = (
                (0, 0, 0) if 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2] > 150 else (255, 255, 255)
            )
            draw.rectangle((tx, ty, tx + tw + 4, ty + th + 4), fill=color)
            draw.text((tx + 2 - left, ty + 2 - top), text, fill=ink, font=font)
    return np.asarray(canvas)


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
                font = _font(size[0])
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
