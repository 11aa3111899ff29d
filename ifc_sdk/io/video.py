"""Read video from anywhere as RGB frames: `open_video` (= `ifc_sdk.io.sources.open_source`) and its types.

Iterating the returned `VideoReader` yields `Frame`s in display order and orientation (rotation metadata
applied), decoded ahead in a background thread (`ifc_sdk.io.reader`). Sources: see `ifc_sdk.io.sources`;
damaged video: see `ifc_sdk.io.damage`.
"""

from __future__ import annotations

from ifc_sdk.io.reader import (
    DEFAULT_TIMEOUT,
    IMAGE_EXTENSIONS,
    MAX_PIXELS,
    CorruptVideoWarning,
    Frame,
    VideoReader,
    iter_batches,
)
from ifc_sdk.io.sources import open_source

__all__ = [
    "DEFAULT_TIMEOUT",
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "CorruptVideoWarning",
    "Frame",
    "VideoReader",
    "iter_batches",
    "open_video",
]


def open_video(source, *, prefetch: int = 16, **kwargs) -> VideoReader:
    """Open a video file, a folder of frame images or any other source `open_source` takes (same arguments).

    Raises:
        VideoError: the source is missing, cannot be opened or its first frame decoded (naming it).
        ConfigError: an argument is invalid.
    """
    return open_source(source, prefetch=prefetch, **kwargs)
