"""Videos whose frames carry their index (to check frame slots after damage), and damage to write into them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from make_videos import pattern, write_video


def marked(index: int, height: int = 48, width: int = 64) -> np.ndarray:
    """`pattern` with the frame index written in 6 black/white 8x8 blocks (survives lossy coding)."""
    img = pattern(index, height, width)
    for bit in range(6):
        img[:8, 8 * bit : 8 * bit + 8] = 255 * ((index >> bit) & 1)
    return img


def marked_index(image: np.ndarray) -> int:
    """The index `marked` wrote into a (decoded) frame."""
    return sum(int(image[2:6, 8 * bit + 2 : 8 * bit + 6].mean() > 128) << bit for bit in range(6))


def write_marked(path: Path, num_frames: int = 60, **kwargs) -> Path:
    """`marked` frames at 10 fps, a keyframe every 12 frames."""
    return write_video(path, images=[marked(i) for i in range(num_frames)], options={"g": "12"}, **kwargs)


def zero_range(src: Path, dst: Path, start: float, stop: float) -> Path:
    """Copy ``src`` with the bytes between two relative positions zeroed."""
    data = bytearray(src.read_bytes())
    a, b = int(len(data) * start), int(len(data) * stop)
    data[a:b] = bytes(b - a)
    dst.write_bytes(bytes(data))
    return dst
