"""`VideoResult`: the tracks of one video, with per-frame, tabular, serialised and drawn views of them."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ifc_sdk.errors import ConfigError
from ifc_sdk.results.frames import FrameView
from ifc_sdk.results.track import Prediction, Track


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
        score_threshold: the minimum track score kept by `filter`, None when no track was dropped.
        images: the input frames, uint8 ``(H, W, 3)`` RGB, when segmented with ``keep_frames=True``.
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
        from ifc_sdk.results.serialize import result_to_dict

        return result_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> VideoResult:
        """The result `to_dict` wrote; a malformed dict is a `ConfigError` naming the field."""
        from ifc_sdk.results.serialize import result_from_dict

        return result_from_dict(data)

    def save_json(self, path: str | os.PathLike) -> Path:
        """Write `to_dict` as JSON to ``path`` (atomically); returns ``path``."""
        from ifc_sdk.results.serialize import save_result_json

        return save_result_json(self, path)

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> VideoResult:
        """Read a result written by `save_json`."""
        from ifc_sdk.results.serialize import load_result_json

        return load_result_json(path)

    def to_pandas(self):
        """A ``pandas.DataFrame`` with one row per (track, frame the track is visible in), in frame order:
        ``frame, time, track, label, name, score, x1, y1, x2, y2, area`` (needs ``ifc-sdk[pandas]``)."""
        from ifc_sdk.results.serialize import result_to_pandas

        return result_to_pandas(self)

    def plot(self, index: int, image: np.ndarray | None = None, *, alpha: float = 0.5) -> np.ndarray:
        """Frame ``index`` with masks, boxes and labels drawn: uint8 ``(H, W, 3)`` RGB.

        Drawn over ``image`` (uint8 ``(H, W, 3)`` RGB), else the kept frame (``keep_frames=True``), else a
        black canvas of the masks' size.
        """
        from ifc_sdk.results.plot import draw_frame

        frame = self.frames[index]
        if image is None:
            image = frame.image if frame.image is not None else np.zeros((*self.size, 3), dtype=np.uint8)
        return draw_frame(image, frame, alpha=alpha, score_threshold=self.score_threshold)

    def save_overlay(
        self,
        path: str | os.PathLike,
        *,
        fps: float | None = None,
        alpha: float = 0.5,
        codec: str | None = None,
    ) -> Path:
        """Write a video of every frame with its masks, boxes and labels drawn (atomically); returns ``path``.

        Uses the frames kept by ``keep_frames=True``; otherwise decodes ``source`` again (a `ConfigError`
        when there is no source to read, e.g. frames given in memory).
        """
        from ifc_sdk.io.overlay import write_overlay

        if self.images is not None:
            return write_overlay(self, self.images, path, fps=fps, alpha=alpha, codec=codec)
        if self.source is None or not Path(self.source).exists():
            raise ConfigError(
                "save_overlay: the frames were not kept and there is no video file to read them from again "
                f"(source {self.source!r}); segment with keep_frames=True"
            )
        from ifc_sdk.io.video import open_video

        with open_video(self.source) as reader:
            return write_overlay(self, reader, path, fps=fps, alpha=alpha, codec=codec)
