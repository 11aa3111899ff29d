"""`VideoResult`: the tracks of one video, with per-frame, tabular, serialised and drawn views of them."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, overload

import numpy as np

from ifc_sdk.errors import ConfigError
from ifc_sdk.results.frames import FrameInstances
from ifc_sdk.results.overlay import encode_video
from ifc_sdk.results.plot import default_font, draw_frame
from ifc_sdk.results.serialize import (
    load_result_json,
    result_from_dict,
    result_to_dict,
    result_to_pandas,
    save_result_json,
)
from ifc_sdk.results.track import Prediction, Track

DEFAULT_FPS = 25.0  # of an overlay when the source's rate is unknown


def check_probability(value, name: str) -> float:
    """``value`` as a float in [0, 1]; anything else (NaN, a bool, a string, 1.5) is a `ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


@dataclass(eq=False)
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
        score_threshold: the minimum track score kept by `filter`, None for an unfiltered result.
        images: the input frames, uint8 ``(H, W, 3)`` RGB, when segmented with ``keep_frames=True``.
        decode_report: what decoding the source found (`ifc_sdk.io.damage.DecodeReport`: frames expected,
            decoded, flagged corrupt, missing), None for frames given to `segment_frames`.
    """

    tracks: list[Track]
    num_frames: int
    size: tuple[int, int]
    source: str | None = None
    fps: float | None = None
    timestamps: list[float] | None = None
    categories: Sequence[str] | None = None
    score_threshold: float | None = None
    images: list[np.ndarray] | None = field(default=None, repr=False)
    decode_report: Any = field(default=None, repr=False)

    def __iter__(self) -> Iterator[Track]:
        return iter(self.tracks)

    def __len__(self) -> int:
        return len(self.tracks)

    @property
    def frames(self) -> FrameView:
        """Per-frame instances: ``result.frames[i]`` or ``for frame in result.frames`` -> `FrameInstances`."""
        return FrameView(self)

    def predictions(self, multi_class: bool = True, threshold: float = 0.01) -> list[Prediction]:
        """The reference's output list.

        With ``multi_class`` (the reference's ``MULTI_CLS_ON``) every (track, class) pair whose averaged
        probability is strictly above ``threshold`` is one prediction, ordered track-major, then by class; a
        track can thus yield several predictions with the same masks. Otherwise each track yields at most one
        prediction, its top class, if that is above ``threshold``. A result narrowed by `filter` also drops
        predictions scored below its ``score_threshold``.
        """
        threshold = check_probability(threshold, "threshold")
        floor = self.score_threshold or 0.0
        out: list[Prediction] = []
        for track in self.tracks:
            probs = track.class_probs[:-1]
            labels = np.flatnonzero(probs > threshold) if multi_class else [track.label]
            for label in labels:
                score = float(probs[label])
                if score > threshold and score >= floor:
                    out.append(Prediction(track.id, int(label), score, track))
        return out

    def filter(self, score_threshold: float) -> VideoResult:
        """A result with only the tracks scored at least ``score_threshold`` (ids unchanged, so colours and
        ids match the full result); the threshold is recorded in ``score_threshold`` and in every output."""
        score_threshold = check_probability(score_threshold, "score_threshold")
        kept = [track for track in self.tracks if track.score >= score_threshold]
        return replace(self, tracks=kept, score_threshold=max(score_threshold, self.score_threshold or 0.0))

    def time(self, index: int) -> float:
        """Seconds from the start to frame ``index``: its timestamp, else ``index / fps``, else NaN."""
        if self.timestamps is not None:
            return float(self.timestamps[index])
        return index / self.fps if self.fps else math.nan

    # -------------------------------------------------------------------------------------------- views
    def to_dict(self) -> dict:
        """A JSON-ready dict that `from_dict` turns back into an equal result (RLE bytes and float32
        probabilities exact); kept images are not included."""
        return result_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> VideoResult:
        """The result `to_dict` wrote; a malformed dict is a `ConfigError` naming the field."""
        return result_from_dict(data, cls)

    def save_json(self, path: str | os.PathLike) -> Path:
        """Write `to_dict` as JSON to ``path`` (atomically); returns ``path``."""
        return save_result_json(self, path)

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> VideoResult:
        """Read a result written by `save_json`."""
        return load_result_json(path, cls)

    def to_pandas(self):
        """A ``pandas.DataFrame`` with one row per (track, frame the track is visible in), in frame order:
        ``frame, time, track, label, name, score, x1, y1, x2, y2, area`` (needs ``ifc-sdk[pandas]``)."""
        return result_to_pandas(self)

    def plot(self, index: int, image: np.ndarray | None = None, *, alpha: float = 0.5) -> np.ndarray:
        """Frame ``index`` with masks, boxes and labels drawn: uint8 ``(H, W, 3)`` RGB.

        Drawn over ``image`` (uint8 ``(H, W, 3)`` RGB), else the kept frame (``keep_frames=True``), else a
        black canvas of the masks' size.
        """
        frame = self.frames[index]
        if image is None:
            image = frame.image if frame.image is not None else np.zeros((*self.size, 3), dtype=np.uint8)
        return draw_frame(image, frame, alpha=alpha, score_threshold=self.score_threshold)

    def save_overlay(
        self,
        path: str | os.PathLike,
        frames: Iterable[np.ndarray] | None = None,
        *,
        fps: float | None = None,
        alpha: float = 0.5,
        codec: str | None = None,
    ) -> Path:
        """Write a video of the frames with masks, boxes and labels drawn (atomically); returns ``path``.

        Draws on ``frames`` (uint8 ``(H, W, 3)`` RGB arrays or `Frame`s, e.g. ``open_video(result.source)``),
        by default the frames kept by ``keep_frames=True``, so the video is not decoded again. ``fps``
        defaults to the source's rate, else 25. H.264 (libx264) when available, else MPEG-4 Part 2.
        """
        if frames is None:
            frames = self.images
        if frames is None:
            raise ConfigError(
                "save_overlay: no frames to draw on: segment with keep_frames=True, or pass "
                f"frames=ifc_sdk.io.video.open_video({self.source!r})"
            )
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"alpha: expected a blending weight in [0, 1], got {alpha!r}")
        rate = fps if fps is not None else (self.fps or DEFAULT_FPS)
        return encode_video(self._drawn(frames, alpha), path, fps=rate, codec=codec)

    def _drawn(self, frames: Iterable[np.ndarray], alpha: float) -> Iterator[np.ndarray]:
        font = None
        for index, item in enumerate(frames):
            if index >= self.num_frames:
                raise ConfigError(
                    f"frames: expected at most {self.num_frames} frames (result.num_frames); got more"
                )
            image = np.asarray(getattr(item, "image", item))
            font = font or default_font(image.shape[0])
            yield draw_frame(
                image, self.frames[index], alpha=alpha, font=font, score_threshold=self.score_threshold
            )


class FrameView(Sequence[FrameInstances]):
    """``result.frames``: the per-frame instances of a `VideoResult`, built on access (`len`, index, iterate)."""

    def __init__(self, result: VideoResult) -> None:
        self._result = result

    def __len__(self) -> int:
        return self._result.num_frames

    @overload
    def __getitem__(self, index: int) -> FrameInstances: ...

    @overload
    def __getitem__(self, index: slice) -> list[FrameInstances]: ...

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._frame(i) for i in range(len(self))[index]]
        try:
            i = range(len(self))[index]
        except TypeError:
            raise TypeError(f"frame indices must be integers or slices, not {type(index).__name__}") from None
        except IndexError:
            raise IndexError(f"frame {index} is out of range for a video of {len(self)} frames") from None
        return self._frame(i)

    def __iter__(self) -> Iterator[FrameInstances]:
        return (self._frame(i) for i in range(len(self)))

    def _frame(self, index: int) -> FrameInstances:
        result = self._result
        present = sorted((t for t in result.tracks if index in t.frame_masks), key=lambda t: t.id)
        categories = result.categories
        return FrameInstances(
            index,
            [track.id for track in present],
            [track.frame_masks[index] for track in present],
            None if result.timestamps is None else result.timestamps[index],
            None if result.images is None else result.images[index],
            [track.label for track in present],
            [track.score for track in present],
            [track.label_name if categories is None else categories[track.label] for track in present],
            tuple(result.size),
        )
