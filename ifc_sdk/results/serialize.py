"""`VideoResult` to and from plain JSON-ready dicts (exact round trip), JSON files and a pandas table.

Dict layout (``version`` 1)::

    {"format": "ifc_sdk.VideoResult", "version": 1, "num_frames": T, "size": [h, w], "source": str | null,
     "fps": float | null, "timestamps": [float] | null, "categories": [str] | null,
     "score_threshold": float | null,
     "tracks": [{"id": int, "class_probs": [float], "masks": [[frame, "rle counts"], ...]}]}

``class_probs`` are float32 values written as the doubles they equal, ``masks`` the COCO compressed RLE
counts of the frames where the track is visible (all of size ``size``), so the round trip is exact.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ifc_sdk.errors import ConfigError
from ifc_sdk.io.atomic import atomic_write_text
from ifc_sdk.results.masks import rle_areas, rle_boxes
from ifc_sdk.results.track import Track

FORMAT = "ifc_sdk.VideoResult"
VERSION = 1
COLUMNS = ("frame", "time", "track", "label", "name", "score", "x1", "y1", "x2", "y2", "area")


def _optional_float(value) -> float | None:
    return None if value is None else float(value)


def result_to_dict(result) -> dict[str, Any]:
    """See `VideoResult.to_dict`."""
    tracks = []
    for track in result.tracks:
        masks = []
        for frame in sorted(track.frame_masks):
            counts = track.frame_masks[frame]["counts"]
            masks.append([int(frame), counts.decode("ascii") if isinstance(counts, bytes) else str(counts)])
        probs = np.asarray(track.class_probs, dtype=np.float32)
        tracks.append({"id": int(track.id), "class_probs": [float(p) for p in probs], "masks": masks})
    return {
        "format": FORMAT,
        "version": VERSION,
        "num_frames": int(result.num_frames),
        "size": [int(result.size[0]), int(result.size[1])],
        "source": result.source,
        "fps": _optional_float(result.fps),
        "timestamps": None if result.timestamps is None else [float(t) for t in result.timestamps],
        "categories": None if result.categories is None else [str(c) for c in result.categories],
        "score_threshold": _optional_float(result.score_threshold),
        "tracks": tracks,
    }


def _field(data: Any, key: str, where: str) -> Any:
    if not isinstance(data, Mapping) or key not in data:
        raise ConfigError(f"{where}: missing field {key!r}")
    return data[key]


def _track_from_dict(entry: Any, at: str, num_frames: int, size: tuple[int, int], categories) -> Track:
    try:
        frame_masks = {}
        for frame, counts in _field(entry, "masks", at):
            if not 0 <= int(frame) < num_frames:
                raise ConfigError(f"{at}: frame {frame} outside the video's {num_frames} frames")
            frame_masks[int(frame)] = {"size": list(size), "counts": counts.encode("ascii")}
    except (TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{at}: 'masks' must list [frame, RLE counts] pairs ({exc})") from exc
    try:
        probs = np.asarray(_field(entry, "class_probs", at), dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{at}: 'class_probs' must be a list of numbers ({exc})") from exc
    if probs.ndim != 1 or probs.size < 2:
        raise ConfigError(f"{at}: 'class_probs' must list num_classes + 1 probabilities")
    return Track(int(_field(entry, "id", at)), probs, frame_masks, num_frames, size, categories)


def result_from_dict(data: Mapping[str, Any], cls: type, where: str = "VideoResult dict"):
    """See `VideoResult.from_dict`: a ``cls`` (`VideoResult`) built from ``data``; ``where`` names the input
    in error messages."""
    if _field(data, "format", where) != FORMAT:
        raise ConfigError(f"{where}: expected 'format': {FORMAT!r}, got {data['format']!r}")
    if _field(data, "version", where) != VERSION:
        raise ConfigError(f"{where}: expected version {VERSION}, got {data['version']!r}")
    try:
        num_frames = int(_field(data, "num_frames", where))
        height, width = (int(v) for v in _field(data, "size", where))
        categories = data.get("categories")
        categories = None if categories is None else [str(c) for c in categories]
        tracks = [
            _track_from_dict(entry, f"{where}: tracks[{i}]", num_frames, (height, width), categories)
            for i, entry in enumerate(_field(data, "tracks", where))
        ]
        timestamps = data.get("timestamps")
        return cls(
            tracks=tracks,
            num_frames=num_frames,
            size=(height, width),
            source=data.get("source"),
            fps=_optional_float(data.get("fps")),
            timestamps=None if timestamps is None else [float(t) for t in timestamps],
            categories=categories,
            score_threshold=_optional_float(data.get("score_threshold")),
        )
    except (TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{where}: malformed result ({exc})") from exc


def save_result_json(result, path: str | os.PathLike) -> Path:
    """See `VideoResult.save_json`."""
    text = json.dumps(result_to_dict(result), separators=(",", ":"))
    atomic_write_text(path, text)
    return Path(path)


def load_result_json(path: str | os.PathLike, cls: type):
    """See `VideoResult.load_json`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the result file ({exc.strerror or exc})") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: the result file is not valid JSON ({exc})") from exc
    return result_from_dict(data, cls, where=str(path))


def result_to_pandas(result):
    """See `VideoResult.to_pandas`."""
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError(
            "VideoResult.to_pandas needs pandas, an optional dependency: pip install 'ifc-sdk[pandas]'"
        ) from exc
    parts: dict[str, list] = {name: [] for name in COLUMNS}
    for track in result.tracks:
        frames = sorted(track.frame_masks)
        rles = [track.frame_masks[f] for f in frames]
        boxes = rle_boxes(rles).astype(np.float64)
        n = len(frames)
        parts["frame"].append(np.asarray(frames, dtype=np.int64))
        parts["time"].append(np.array([result.time(f) for f in frames], dtype=np.float64))
        parts["track"].append(np.full(n, track.id, dtype=np.int64))
        parts["label"].append(np.full(n, track.label, dtype=np.int64))
        parts["name"].append(np.array([track.label_name] * n, dtype=object))
        parts["score"].append(np.full(n, track.score, dtype=np.float64))
        for j, name in enumerate(("x1", "y1")):
            parts[name].append(boxes[:, j])
        parts["x2"].append(boxes[:, 0] + boxes[:, 2])
        parts["y2"].append(boxes[:, 1] + boxes[:, 3])
        parts["area"].append(rle_areas(rles))
    empty = {"name": object, "frame": np.int64, "track": np.int64, "label": np.int64, "area": np.int64}
    columns = {
        name: np.concatenate(chunks) if chunks else np.zeros(0, dtype=empty.get(name, np.float64))
        for name, chunks in parts.items()
    }
    order = np.lexsort((columns["track"], columns["frame"]))
    return pd.DataFrame({name: values[order] for name, values in columns.items()})
