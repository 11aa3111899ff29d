"""`Track` (one instance through a video, masks as sparse per-frame COCO RLE), `Prediction`, and
`TrackSummary` (a track's class while a video is still streaming)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ifc_sdk.results.masks import RLE, decode_masks, empty_rle, rle_areas, rle_boxes, xywh_to_xyxy


@dataclass(eq=False)
class Track:
    """One object instance followed through a video.

    Attributes:
        id: track index, in order of creation (0-based).
        class_probs: float32 ``(num_classes + 1,)``, softmax probabilities averaged over the windows the track
            appears in; the last entry is the no-object class.
        frame_masks: COCO RLE per frame index, only for frames where the mask is not empty.
        num_frames: length of the video.
        size: ``(height, width)`` of the masks.
        categories: class names indexed by 0-based label, or None.
    """

    id: int
    class_probs: np.ndarray
    frame_masks: dict[int, RLE]
    num_frames: int
    size: tuple[int, int]
    categories: Sequence[str] | None = None

    @property
    def masks(self) -> list[RLE]:
        """One COCO RLE per frame (an empty mask where the track is absent)."""
        empty = empty_rle(self.size)
        return [self.frame_masks.get(f, empty) for f in range(self.num_frames)]

    @property
    def label(self) -> int:
        """0-based class index with the highest probability (the no-object class excluded)."""
        return int(np.argmax(self.class_probs[:-1]))

    @property
    def score(self) -> float:
        """Probability of `label`."""
        return float(self.class_probs[self.label])

    @property
    def label_name(self) -> str | None:
        """Name of `label`, when the model carries category names."""
        return None if self.categories is None else self.categories[self.label]

    @property
    def areas(self) -> np.ndarray:
        """int64 ``(T,)`` mask area per frame in pixels."""
        return rle_areas(self.masks)

    @property
    def present(self) -> np.ndarray:
        """bool ``(T,)``: frames in which the track has a non-empty mask."""
        out = np.zeros(self.num_frames, dtype=bool)
        out[list(self.frame_masks)] = True
        return out

    @property
    def boxes(self) -> np.ndarray:
        """float32 ``(T, 4)`` boxes as ``[x, y, w, h]`` in pixels; zeros where the mask is empty."""
        out = np.zeros((self.num_frames, 4), dtype=np.float32)
        frames = sorted(self.frame_masks)
        out[frames] = rle_boxes([self.frame_masks[f] for f in frames])
        return out

    @property
    def boxes_xyxy(self) -> np.ndarray:
        """float32 ``(T, 4)`` boxes as ``[x1, y1, x2, y2]`` in pixels; zeros where the mask is empty."""
        return xywh_to_xyxy(self.boxes)

    def mask_array(self) -> np.ndarray:
        """bool ``(T, H, W)``: the decoded masks."""
        return decode_masks(self.masks)


@dataclass
class Prediction:
    """One (track, class) output as the reference returns it; readable as attributes or as a mapping."""

    track_id: int
    label: int
    score: float
    track: Track = field(repr=False)

    @property
    def masks(self) -> np.ndarray:
        """bool ``(T, H, W)`` masks of the track."""
        return self.track.mask_array()

    def __getitem__(self, key: str):
        return getattr(self, key)

    def keys(self) -> list[str]:
        return ["track_id", "label", "score", "masks"]


@dataclass(frozen=True, eq=False)
class TrackSummary:
    """A track's class as known so far: what `VideoStream.tracks` lists while frames are streamed.

    Attributes:
        id: the track id (as in `FrameInstances.track_ids`).
        label: 0-based class with the highest probability (no-object excluded).
        name: its class name, None when the model has no category names.
        score: its probability.
        class_probs: float32 ``(num_classes + 1,)`` mean probabilities so far (last = no-object).
        provisional: True while later windows can still change them.
    """

    id: int
    label: int
    name: str | None
    score: float
    class_probs: np.ndarray = field(repr=False)
    provisional: bool = False


def track_summaries(
    tracks: Iterable, categories: Sequence[str] | None, provisional: bool
) -> list[TrackSummary]:
    """`TrackSummary` of each tracker state (anything with ``id`` and ``class_probs``)."""
    out = []
    for state in tracks:
        probs = np.asarray(state.class_probs, dtype=np.float32)
        label = int(np.argmax(probs[:-1]))
        name = None if categories is None else categories[label]
        out.append(TrackSummary(int(state.id), label, name, float(probs[label]), probs, provisional))
    return out
