"""Result types of video inference: a `VideoResult` holds `Track`s whose masks are COCO RLE per frame.

Masks are stored run-length encoded (pycocotools' compressed RLE, ``counts`` as bytes) so a result for a long
video stays small; arrays are decoded on demand.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

RLE = dict  # {"size": [h, w], "counts": bytes}


def encode_masks(masks: np.ndarray) -> list[RLE]:
    """Encode boolean masks ``(N, H, W)`` into N compressed COCO RLEs."""
    if masks.ndim != 3:
        raise ValueError(f"expected masks of shape (N, H, W), got {masks.shape}")
    if masks.shape[0] == 0:
        return []
    return mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))


def decode_masks(rles: Sequence[RLE]) -> np.ndarray:
    """Decode N compressed COCO RLEs of one size into a boolean array ``(N, H, W)``."""
    if len(rles) == 0:
        raise ValueError("decode_masks needs at least one RLE to know the size")
    return mask_utils.decode(list(rles)).transpose(2, 0, 1).astype(bool)


def empty_rle(size: tuple[int, int]) -> RLE:
    """The compressed RLE of an all-False mask of ``size`` (height, width)."""
    return encode_masks(np.zeros((1, *size), dtype=bool))[0]


@dataclass
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
        return mask_utils.area(self.masks).astype(np.int64)

    @property
    def present(self) -> np.ndarray:
        """bool ``(T,)``: frames in which the track has a non-empty mask."""
        out = np.zeros(self.num_frames, dtype=bool)
        out[list(self.frame_masks)] = True
        return out

    @property
    def boxes(self) -> np.ndarray:
        """float32 ``(T, 4)`` boxes as ``[x, y, w, h]`` in pixels; zeros where the mask is empty."""
        return mask_utils.toBbox(self.masks).astype(np.float32)

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


@dataclass
class VideoResult:
    """Instances segmented and tracked in one video.

    Attributes:
        tracks: tracks in order of creation.
        num_frames: number of frames.
        size: ``(height, width)`` of the masks.
        source: the video path or frame folder, None for frames given in memory.
        fps: average frame rate of the source, None when unknown.
        timestamps: seconds per frame (from packet pts for files), None when unknown.
        categories: class names indexed by 0-based label, or None.
        decode_report: what decoding the source found (`ifc_sdk.io.damage.DecodeReport`: frames expected,
            decoded, corrupt, missing), None for frames given in memory to `segment_frames`.
    """

    tracks: list[Track]
    num_frames: int
    size: tuple[int, int]
    source: str | None = None
    fps: float | None = None
    timestamps: list[float] | None = None
    categories: Sequence[str] | None = None
    decode_report: Any = None

    def __iter__(self) -> Iterator[Track]:
        return iter(self.tracks)

    def __len__(self) -> int:
        return len(self.tracks)

    def predictions(self, multi_class: bool = True, threshold: float = 0.01) -> list[Prediction]:
        """The reference's output list.

        With ``multi_class`` (the reference's ``MULTI_CLS_ON``) every (track, class) pair whose averaged
        probability is strictly above ``threshold`` is one prediction, ordered track-major, then by class; a
        track can thus yield several predictions with the same masks. Otherwise each track yields at most one
        prediction, its top class, if that is above ``threshold``.
        """
        out: list[Prediction] = []
        for track in self.tracks:
            probs = track.class_probs[:-1]
            labels = np.flatnonzero(probs > threshold) if multi_class else [track.label]
            for label in labels:
                score = float(probs[label])
                if score > threshold:
                    out.append(Prediction(track.id, int(label), score, track))
        return out
