"""Build small test videos (and broken ones) with PyAV and numpy only, so tests need no ffmpeg CLI."""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image


def pattern(index: int, height: int, width: int) -> np.ndarray:
    """A smooth, frame-dependent RGB image (compresses well, so lossy codecs stay close to it)."""
    y, x = np.mgrid[:height, :width]
    r = (x * 255 // max(width - 1, 1) + index * 7) % 256
    g = (y * 255 // max(height - 1, 1) + index * 3) % 256
    b = np.full_like(x, (64 + index * 11) % 256)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def marker_image(height: int, width: int, marker: int = 8) -> np.ndarray:
    """Black image with a white square in the top-left corner (to check orientation)."""
    img = np.zeros((height, width, 3), np.uint8)
    img[:marker, :marker] = 255
    return img


def write_video(
    path: str | os.PathLike,
    *,
    num_frames: int = 3,
    size: tuple[int, int] = (48, 64),
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rate: int | Fraction = 10,
    pts_ms: Sequence[int] | None = None,
    rotation: int | None = None,
    hflip: bool = False,
    vflip: bool = False,
    images: Sequence[np.ndarray] | None = None,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
) -> Path:
    """Encode ``images`` (default: `pattern` frames of ``size`` = (height, width)) into ``path``.

    The container follows the suffix of ``path``. ``pts_ms`` gives variable frame timing (time base 1/1000 s); ``rotation``/``hflip``/``vflip`` write a
    display matrix (``rotation`` counter-clockwise degrees, as `VideoFrame.rotation` reads it back).
    """
    if images is None:
        images = [pattern(i, *size) for i in range(num_frames)]
    height, width = images[0].shape[:2]
    opts = {"preset": "ultrafast"} if codec == "libx264" else {}
    opts.update(options or {})
    with av.open(os.fspath(path), mode="w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=rate, options=opts)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
            stream.time_base = Fraction(1, 1000)
        if rotation is not None or hflip or vflip:
            stream.set_display_rotation(rotation or 0, hflip=hflip, vflip=vflip)
        for i, img in enumerate(images):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            if pts_ms is not None:
                frame.pts = int(pts_ms[i])
                frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return Path(path)


def write_audio_only(path: str | os.PathLike, seconds: float = 0.5) -> Path:
    """An AAC-in-MP4 file with no video stream."""
    rate = 44100
    with av.open(os.fspath(path), mode="w") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        samples = (np.sin(np.arange(int(rate * seconds)) / 20) * 0.3).astype(np.float32)
        for start in range(0, samples.size, 1024):
            chunk = samples[start : start + 1024][None, :]
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return Path(path)


def mdat_offset(data: bytes) -> int:
    """Offset of the first byte of the ``mdat`` payload of an MP4."""
    pos = data.find(b"mdat")
    if pos < 0:
        raise ValueError("no mdat box")
    return pos + 4


def flip_bytes(src: Path, dst: Path, *, at: Sequence[float] = (0.5,), count: int = 40, seed: int = 0) -> Path:
    """Copy ``src`` with ``count`` bytes inverted around each relative position in ``at``."""
    data = bytearray(src.read_bytes())
    rng = np.random.default_rng(seed)
    for rel in at:
        centre = int(len(data) * rel)
        for k in rng.integers(centre - 200, centre + 200, count):
            data[int(k)] ^= 0xFF
    dst.write_bytes(bytes(data))
    return dst


def truncate(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def zero_payload(src: Path, dst: Path) -> Path:
    """Keep the MP4 boxes before ``mdat`` (a faststart file: the index is intact) but zero all frame data."""
    data = bytearray(src.read_bytes())
    start = mdat_offset(bytes(data))
    data[start:] = bytes(len(data) - start)
    dst.write_bytes(bytes(data))
    return dst


def write_frame_folder(
    folder: Path, names: Sequence[str], size: tuple[int, int] = (24, 32), quality: int = 95
) -> list[np.ndarray]:
    """Write one image per name (format from the suffix); returns the images in ``names`` order."""
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for i, name in enumerate(names):
        img = pattern(i * 10, *size)
        kwargs = {"quality": quality} if name.lower().endswith((".jpg", ".jpeg")) else {}
        Image.fromarray(img).save(folder / name, **kwargs)
        images.append(img)
    return images
