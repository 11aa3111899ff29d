"""Encode RGB frames into a video file (the overlay behind `VideoResult.save_overlay`).

H.264 (libx264, yuv420p) when FFmpeg has it, else MPEG-4 Part 2; odd sizes are padded by one pixel to even.
The file is written to a temporary name and renamed, so it appears complete or not at all.
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


def encode_video(
    frames: Iterable[np.ndarray], path: str | os.PathLike, *, fps: float, codec: str | None = None
) -> Path:
    """Write uint8 ``(H, W, 3)`` RGB ``frames`` (all of one size) at ``fps`` to ``path``; returns ``path``.

    The container follows the suffix of ``path`` (``.mp4`` if none).
    """
    if not fps or fps <= 0:
        raise ConfigError(f"fps: expected a positive frame rate, got {fps!r}")
    rate = Fraction(fps).limit_denominator(100_000)
    codec_name = _pick_codec(codec)
    path = Path(path)
    with atomic_path(path, suffix=path.suffix or ".mp4") as tmp:
        _encode(frames, tmp, rate, codec_name)
    return path


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


def _encode(frames: Iterable[np.ndarray], tmp: Path, rate: Fraction, codec: str) -> None:
    with av.open(os.fspath(tmp), mode="w") as container:
        stream = None
        size: tuple[int, int] | None = None
        for index, image in enumerate(frames):
            if size is None:
                size = image.shape[:2]
                stream = _add_stream(container, codec, rate, size)
            elif image.shape[:2] != size:
                raise ConfigError(
                    f"frame {index}: expected {size[1]}x{size[0]} like the first frame, got "
                    f"{image.shape[1] if image.ndim > 1 else '?'}x{image.shape[0]}"
                )
            pad_h, pad_w = stream.height - size[0], stream.width - size[1]
            if pad_h or pad_w:
                image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
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
