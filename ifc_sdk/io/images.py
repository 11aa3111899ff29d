"""Frames that are not a video stream: image files (a folder, a glob, a list of paths) and arrays in memory.

Image files are decoded with PIL in EXIF orientation; 16-bit images are scaled to 8 bits (``>> 8``), not
clipped. Arrays are uint8 RGB: numpy ``(T, H, W, 3)`` / ``(H, W, 3)`` frames, torch tensors either
``(T, 3, H, W)`` / ``(3, H, W)`` (torchvision's layout) or channels-last. Every frame must have the size of the
first; arrays and lists can be read again, iterators and generators once.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ifc_sdk.errors import ConfigError, VideoError
from ifc_sdk.io.damage import DecodeReport
from ifc_sdk.io.reader import Frame, check_pixels

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def natural_key(name: str) -> list:
    """Sort key comparing the digit runs of a name as numbers (``frame_10`` after ``frame_9``)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def read_image(file: Path, max_pixels: int | None = None) -> np.ndarray:
    """uint8 ``(H, W, 3)`` RGB of a JPEG/PNG in EXIF orientation; 16-bit images scaled to 8 bits (``>> 8``)."""
    try:
        with Image.open(file) as img:
            check_pixels(str(file), img.height, img.width, max_pixels)
            img = ImageOps.exif_transpose(img)
            if img.mode in _SIXTEEN_BIT_MODES:  # grey, 16 bits ("I" holds them in 32): keep the top byte
                grey = (np.clip(np.asarray(img, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8)
                return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
            return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise VideoError(file, f"expected a JPEG/PNG frame image; it cannot be decoded: {e}") from e


class ImageFilesSource:
    """Image files in a given order (a folder sorted by name, a glob, a list of paths)."""

    restartable = True
    fps = None

    def __init__(self, name: str, files: Sequence[Path], max_pixels: int | None) -> None:
        self.name = name
        self.files = tuple(files)
        self.num_frames_hint = len(self.files)
        self._max_pixels = max_pixels
        first = read_image(self.files[0], max_pixels)
        self.size = (int(first.shape[0]), int(first.shape[1]))

    def frames(self, stop: threading.Event, report: DecodeReport) -> Iterator[Frame]:
        for index, file in enumerate(self.files):
            image = read_image(file, self._max_pixels)
            if image.shape[:2] != self.size:
                raise VideoError(
                    file,
                    f"expected a frame of {self.size[1]}x{self.size[0]} like the first frame; "
                    f"found {image.shape[1]}x{image.shape[0]}",
                )
            report.frames_decoded += 1
            yield Frame(index, image, None)
            if stop.is_set():
                return
        report.frames_expected = len(self.files)

    def close(self) -> None:
        pass


def as_frame(item, index: int) -> np.ndarray:
    """One frame of an array source -> uint8 ``(H, W, 3)`` RGB numpy (a view when it already is one)."""
    if isinstance(item, torch.Tensor):
        item = item.detach()
        if item.ndim == 3 and item.shape[0] == 3 and item.shape[-1] != 3:  # CHW, torchvision's layout
            item = item.permute(1, 2, 0)
        item = item.cpu().numpy()
    elif isinstance(item, np.ndarray) and item.ndim == 3 and item.shape[-1] != 3 and item.shape[0] == 3:
        item = item.transpose(1, 2, 0)
    if not isinstance(item, np.ndarray):
        raise ConfigError(
            f"frame {index}: expected a uint8 (H, W, 3) array or (3, H, W) tensor, got {type(item).__name__}"
        )
    if item.ndim != 3 or item.shape[-1] != 3:
        raise ConfigError(f"frame {index}: expected an (H, W, 3) RGB frame, got shape {tuple(item.shape)}")
    if item.dtype != np.uint8:
        raise ConfigError(
            f"frame {index}: expected uint8 RGB values 0-255, got {item.dtype} (convert first, e.g. "
            "(x * 255).round().astype(np.uint8) for floats in [0, 1], or x >> 8 for 16-bit)"
        )
    if 0 in item.shape:
        raise ConfigError(f"frame {index}: expected a non-empty frame, got shape {tuple(item.shape)}")
    return np.ascontiguousarray(item)


class ArraySource:
    """Frames held in memory: a ``(T, H, W, 3)`` array or tensor, or a list/iterator of frames.

    ``frames`` is a sequence (read again on every pass) or a one-pass iterator whose first frame was already
    taken (``first``) to learn the size.
    """

    fps = None

    def __init__(
        self, name: str, frames: Sequence | Iterator, first: np.ndarray, *, restartable: bool
    ) -> None:
        self.name = name
        self.restartable = restartable
        self.size = (int(first.shape[0]), int(first.shape[1]))
        self.num_frames_hint = len(frames) if restartable else None
        self._frames = frames
        self._first = None if restartable else first

    def frames(self, stop: threading.Event, report: DecodeReport) -> Iterator[Frame]:
        if self.restartable:
            items: Iterable = self._frames
        elif self._first is not None:
            items, self._first = itertools.chain([self._first], self._frames), None
        else:
            raise VideoError(self.name, "expected a first pass: an iterator of frames can be read only once")
        for index, item in enumerate(items):
            image = as_frame(item, index)
            if image.shape[:2] != self.size:
                raise ConfigError(
                    f"frame {index}: expected {self.size[1]}x{self.size[0]} like the first frame, "
                    f"got {image.shape[1]}x{image.shape[0]}"
                )
            report.frames_decoded += 1
            yield Frame(index, image, None)
            if stop.is_set():
                return

    def close(self) -> None:
        pass


def array_frames(source: np.ndarray | torch.Tensor) -> Sequence:
    """A ``(T, H, W, 3)`` numpy array or ``(T, 3, H, W)`` / ``(T, H, W, 3)`` tensor as a sequence of frames."""
    if source.ndim != 4:
        raise ConfigError(
            f"expected frames as a (T, H, W, 3) array (or a (T, 3, H, W) tensor), got shape {tuple(source.shape)}; "
            "for one frame pass x[None]"
        )
    if source.shape[0] == 0:
        raise ConfigError(f"expected at least one frame, got an array of shape {tuple(source.shape)}")
    return source  # each frame goes through `as_frame`, which reads either layout
