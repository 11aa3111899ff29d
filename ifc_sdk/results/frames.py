"""Per-frame view of a result: `FrameInstances`, for streamed frames and for `VideoResult.frames` alike.

A frame holds the instances visible in it (track ids with their COCO RLE masks) and, per instance, the
track's label, class name and score. Streamed frames are released before the video ends, when a track's
class scores may still change: their labels and scores are those known at release and ``provisional`` is
True; frames released at the end of the video, and every frame of a `VideoResult`, are final.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from ifc_sdk.results.masks import RLE, decode_masks, rle_areas, rle_boxes, xywh_to_xyxy


def _int_array(values=()) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).reshape(-1)


def _float_array(values=()) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).reshape(-1)


@dataclass(eq=False)
class FrameInstances:
    """The instances of one frame: ``track_ids[i]`` owns ``masks[i]``, ``labels[i]``, ``scores[i]``, ...

    Attributes:
        index: 0-based frame index.
        track_ids: the tracks visible in the frame (non-empty mask), ascending.
        masks: one COCO RLE per instance at the output size (`mask_array` decodes them).
        timestamp: seconds from the start of the video, None when unknown.
        image: the input frame, uint8 ``(H, W, 3)`` RGB, when frames are kept; else None.
        labels: int64 ``(N,)`` 0-based class of each instance's track.
        scores: float32 ``(N,)`` probability of that class.
        names: class name of each label, None where the model has no category names.
        size: ``(height, width)`` of the masks.
        provisional: True while later windows can still change the tracks' labels and scores.
    """

    index: int
    track_ids: list[int]
    masks: list[RLE]
    timestamp: float | None = None
    image: np.ndarray | None = field(default=None, repr=False)
    labels: np.ndarray = field(default_factory=_int_array)
    scores: np.ndarray = field(default_factory=_float_array)
    names: list[str | None] = field(default_factory=list)
    size: tuple[int, int] | None = None
    provisional: bool = False

    def __post_init__(self) -> None:
        self.labels, self.scores = _int_array(self.labels), _float_array(self.scores)
        n = len(self.track_ids)
        lengths = {len(self.masks), len(self.labels), len(self.scores), len(self.names)}
        if lengths != {n}:
            raise ValueError(
                f"frame {self.index}: expected masks, labels, scores and names for each of the {n} track ids, "
                f"got {len(self.masks)}, {len(self.labels)}, {len(self.scores)}, {len(self.names)}"
            )

    def __len__(self) -> int:
        return len(self.track_ids)

    @property
    def boxes(self) -> np.ndarray:
        """float32 ``(N, 4)`` tight boxes ``[x, y, w, h]`` of the masks in pixels."""
        return rle_boxes(self.masks)

    @property
    def boxes_xyxy(self) -> np.ndarray:
        """float32 ``(N, 4)`` tight boxes ``[x1, y1, x2, y2]`` of the masks in pixels."""
        return xywh_to_xyxy(self.boxes)

    @property
    def areas(self) -> np.ndarray:
        """int64 ``(N,)`` mask areas in pixels."""
        return rle_areas(self.masks)

    def mask_array(self) -> np.ndarray:
        """bool ``(N, H, W)``: the decoded masks (``(0, H, W)`` for a frame without instances)."""
        if self.masks:
            return decode_masks(self.masks)
        height, width = self.size if self.size is not None else (0, 0)
        return np.zeros((0, height, width), dtype=bool)


def frame_instances(
    index: int,
    track_ids: Sequence[int],
    masks: Sequence[RLE],
    tracks: Sequence,
    categories: Sequence[str] | None,
    *,
    size: tuple[int, int] | None = None,
    timestamp: float | None = None,
    image: np.ndarray | None = None,
    provisional: bool = False,
) -> FrameInstances:
    """Build a frame's instances from the tracker's state.

    ``tracks[i]`` is the state of track ``i`` with ``class_probs`` (``(K+1,)``, last = no-object) as known
    now; labels and scores are read from it at this moment, so a provisional frame keeps what was known when
    it was released.
    """
    probs = [np.asarray(tracks[t].class_probs)[:-1] for t in track_ids]
    labels = [int(np.argmax(p)) for p in probs]
    scores = [float(p[label]) for p, label in zip(probs, labels)]
    names = [None if categories is None else categories[label] for label in labels]
    return FrameInstances(
        index, list(track_ids), list(masks), timestamp, image, labels, scores, names, size, provisional
    )


class FrameKeeper:
    """Passes streamed frames through and keeps their images (``keep_frames=True``), so that an overlay can
    be drawn afterwards without decoding the video a second time.

    ``max_bytes`` bounds the memory the kept images may take: past it they are all dropped and `images` is
    None (the overlay then decodes the source again). None keeps every frame.
    """

    def __init__(self, frames: Iterable[FrameInstances], max_bytes: int | None = None) -> None:
        self._frames = frames
        self._max_bytes = max_bytes
        self._kept: list[np.ndarray] | None = []
        self._bytes = 0

    def __iter__(self) -> Iterator[FrameInstances]:
        for frame in self._frames:
            if self._kept is not None:
                self._keep(frame)
            yield frame

    def _keep(self, frame: FrameInstances) -> None:
        if frame.image is None:
            raise ValueError(
                f"frame {frame.index} carries no image: segment with keep_images=True to keep frames"
            )
        self._bytes += frame.image.nbytes
        if self._max_bytes is not None and self._bytes > self._max_bytes:
            self._kept = None
        else:
            self._kept.append(frame.image)

    @property
    def images(self) -> list[np.ndarray] | None:
        """The kept images in frame order, or None when they outgrew ``max_bytes``."""
        return self._kept
