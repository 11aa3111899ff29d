"""Write a `VideoResult` in the usual video-instance-segmentation formats; every writer is atomic.

==========  =====================================================================================
``ytvis``   YouTube-VIS results JSON: ``[{video_id, category_id, score, segmentations}]``
``coco``    per-frame COCO-RLE JSON: every frame's instances with track id, label, score, RLE, bbox
``mots``    MOTS challenge txt: ``frame_id track_id class_id height width rle_counts`` per mask
``png``     one palette PNG per frame, pixel value ``track id + 1`` (0 background)
==========  =====================================================================================

RLE ``counts`` are written as text (COCO compressed RLE), so any pycocotools can decode them. The MOTS and
PNG formats hold one label per pixel: where masks overlap the higher-score track wins (ties: lower id).
A result narrowed with `VideoResult.filter` is written as it is: every format holds the same tracks, and
``coco`` records the ``score_threshold``.

Writing into a folder touches only the files named here; temporaries a killed run left beside them
(``.results.json.tmp-*``, ``.masks.staging-*``, ...) are removed by the next run writing the same file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from ifc_sdk.errors import ConfigError, OutputError
from ifc_sdk.io.atomic import atomic_write_text, ensure_dir, output_error, staging_dir, sweep_temporaries
from ifc_sdk.results import RLE, Track, VideoResult, decode_masks, encode_masks
from ifc_sdk.results.plot import track_color

__all__ = [
    "FILE_NAMES",
    "FORMATS",
    "export",
    "publish",
    "save_coco_rle_json",
    "save_mots_txt",
    "save_png_masks",
    "save_ytvis_json",
    "sweep_outputs",
    "to_ytvis_results",
]

FORMATS = ("ytvis", "coco", "mots", "png")
FILE_NAMES = {"ytvis": "results.json", "coco": "coco_rle.json", "mots": "mots.txt", "png": "masks"}
_MAX_PNG_TRACKS = 255  # palette PNG: values 1..255 hold track ids 0..254


def sweep_outputs(folder: str | os.PathLike, names: Sequence[str]) -> list[Path]:
    """Remove the temporaries a killed writer of the outputs ``names`` left in ``folder`` (``.results.json.tmp-*``,
    ``.masks.staging-*``, ...; see `ifc_sdk.io.atomic.sweep_temporaries`); nothing else is touched."""
    return sweep_temporaries(folder, "|".join(re.escape(name) for name in names))


def _rle_text(rle: RLE) -> dict:
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": counts}


def _category_id(label: int, category_ids: Sequence[int] | Mapping[int, int] | None) -> int:
    if category_ids is None:
        return label + 1
    try:
        return int(category_ids[label])
    except (IndexError, KeyError) as e:
        raise ConfigError(
            f"category_ids: expected an id for every label; label {label} has none "
            f"(got {len(category_ids)} ids)"
        ) from e


def to_ytvis_results(
    result: VideoResult,
    video_id: int,
    *,
    multi_class: bool = True,
    threshold: float = 0.01,
    category_ids: Sequence[int] | Mapping[int, int] | None = None,
) -> list[dict]:
    """YouTube-VIS result entries of one video, one per prediction (see `VideoResult.predictions`).

    ``category_id`` is ``label + 1`` (YouTube-VIS ids are 1-based) unless ``category_ids`` maps 0-based labels
    to dataset ids. ``segmentations`` holds one RLE per frame (empty masks included), counts as text.
    """
    entries: list[dict] = []
    encoded: dict[int, list[dict]] = {}
    for pred in result.predictions(multi_class=multi_class, threshold=threshold):
        segs = encoded.get(pred.track_id)
        if segs is None:
            segs = encoded[pred.track_id] = [_rle_text(r) for r in pred.track.masks]
        entries.append(
            {
                "video_id": int(video_id),
                "category_id": _category_id(pred.label, category_ids),
                "score": float(pred.score),
                "segmentations": segs,
            }
        )
    return entries


def _json_default(obj):
    if isinstance(obj, bytes):
        return obj.decode("ascii")
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def _write_json(obj, path: str | os.PathLike) -> Path:
    text = json.dumps(obj, default=_json_default, separators=(",", ":"))  # fails before the file is touched
    atomic_write_text(path, text)
    return Path(path)


def save_ytvis_json(entries: Sequence[dict], path: str | os.PathLike) -> Path:
    """Write YouTube-VIS result entries (e.g. of several videos, concatenated) as one JSON list."""
    return _write_json(list(entries), path)


def _label_name(track: Track, result: VideoResult) -> str | None:
    if result.categories is not None:
        return result.categories[track.label]
    return track.label_name


def save_coco_rle_json(result: VideoResult, path: str | os.PathLike) -> Path:
    """Write per-frame instances as COCO RLE JSON.

    Layout: ``{"source", "size": [h, w], "num_frames", "fps", "categories", "score_threshold", "frames":
    [{"frame", "timestamp",
    "instances": [{"track_id", "label", "label_name", "score", "segmentation": {"size", "counts"}, "bbox":
    [x, y, w, h], "area"}]}]}``; a track appears in the frames where its mask is non-empty. ``label`` is the
    0-based class index.
    """
    frames: list[dict] = [
        {
            "frame": t,
            "timestamp": None if result.timestamps is None else float(result.timestamps[t]),
            "instances": [],
        }
        for t in range(result.num_frames)
    ]
    for track in result.tracks:
        label, score, name = track.label, track.score, _label_name(track, result)
        present = _present(track, result.num_frames)
        if not present:
            continue
        rles = [rle for _, rle in present]
        areas = mask_utils.area(rles)
        boxes = mask_utils.toBbox(rles)
        for (t, rle), area, box in zip(present, areas, boxes, strict=True):
            if area <= 0:
                continue
            frames[t]["instances"].append(
                {
                    "track_id": int(track.id),
                    "label": label,
                    "label_name": name,
                    "score": score,
                    "segmentation": _rle_text(rle),
                    "bbox": [float(v) for v in box],
                    "area": int(area),
                }
            )
    for frame in frames:
        frame["instances"].sort(key=lambda inst: inst["track_id"])
    doc = {
        "source": result.source,
        "size": [int(result.size[0]), int(result.size[1])],
        "num_frames": int(result.num_frames),
        "fps": result.fps,
        "categories": None if result.categories is None else list(result.categories),
        "score_threshold": result.score_threshold,
        "frames": frames,
    }
    return _write_json(doc, path)


def _present(track: Track, num_frames: int) -> list[tuple[int, RLE]]:
    """``(frame, rle)`` of the frames where ``track`` has a stored mask, in frame order."""
    return [(t, track.frame_masks[t]) for t in sorted(track.frame_masks) if t < num_frames]


def _paint_order(result: VideoResult) -> list[Track]:
    """Tracks from lowest to highest priority: painting in this order lets the higher score win overlaps."""
    return sorted(result.tracks, key=lambda t: (t.score, -t.id))


def _id_map(result: VideoResult, t: int, order: Sequence[Track]) -> np.ndarray:
    """int32 ``(H, W)`` map of frame ``t``: track id + 1 of the winning track, 0 for background."""
    out = np.zeros(result.size, dtype=np.int32)
    present = [(track, track.frame_masks[t]) for track in order if t in track.frame_masks]
    if not present:
        return out
    masks = decode_masks([rle for _, rle in present])
    for (track, _), mask in zip(present, masks, strict=True):
        out[mask] = track.id + 1
    return out


def save_mots_txt(
    result: VideoResult,
    path: str | os.PathLike,
    *,
    category_ids: Sequence[int] | Mapping[int, int] | None = None,
) -> Path:
    """Write MOTS challenge txt: ``frame_id track_id class_id height width rle_counts`` per non-empty mask.

    ``frame_id`` is the 0-based frame index, ``track_id`` the track's id, ``class_id`` its top label + 1 (or
    ``category_ids[label]``). MOTS requires masks not to overlap, so overlaps go to the higher-score track;
    a mask left empty by that is not written.
    """
    order = _paint_order(result)
    by_id = {track.id + 1: track for track in order}
    class_of = {track.id: _category_id(track.label, category_ids) for track in order}
    lines: list[str] = []
    for t in range(result.num_frames):
        id_map = _id_map(result, t, order)
        present = np.unique(id_map)
        present = present[present > 0]
        if present.size == 0:
            continue
        rles = encode_masks(np.stack([id_map == v for v in present]))
        for value, rle in zip(present, rles, strict=True):
            track = by_id[int(value)]
            h, w = rle["size"]
            lines.append(f"{t} {track.id} {class_of[track.id]} {h} {w} {_rle_text(rle)['counts']}")
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return Path(path)


def _palette() -> list[int]:
    palette = [0, 0, 0]
    for value in range(1, 256):
        palette.extend(track_color(value - 1))
    return palette


def save_png_masks(result: VideoResult, folder: str | os.PathLike) -> Path:
    """Write one palette PNG per frame (``00000.png``, ...): pixel value = track id + 1, 0 = background.

    Overlaps go to the higher-score track. The folder appears complete or not at all: frames are written to
    a temporary folder beside it which then replaces ``folder``.
    """
    if result.tracks and max(track.id for track in result.tracks) + 1 > _MAX_PNG_TRACKS:
        raise ConfigError(
            f"save_png_masks: expected track ids below {_MAX_PNG_TRACKS} (a palette PNG holds values up to 255), "
            f"got track id {max(track.id for track in result.tracks)}"
        )
    folder = Path(folder)
    order = _paint_order(result)
    palette = _palette()
    digits = max(5, len(str(max(result.num_frames - 1, 0))))

    def write(tmp_dir: Path) -> None:
        for t in range(result.num_frames):
            image = Image.fromarray(_id_map(result, t, order).astype(np.uint8), mode="P")
            image.putpalette(palette)
            image.save(tmp_dir / f"{t:0{digits}d}.png", optimize=False)

    _atomic_folder(folder, write)
    return folder


def _atomic_folder(folder: Path, fill: Callable[[Path], None]) -> None:
    """Fill a staging folder beside ``folder``, then swap it into place (an existing folder is replaced)."""
    if folder.exists() and not folder.is_dir():
        raise OutputError(folder, "expected a folder for the PNG masks, found a file")
    with staging_dir(folder) as tmp:
        fill(tmp)
        _replace(tmp, folder)


def _replace(src: Path, dst: Path) -> None:
    """Rename ``src`` (a file or folder) to ``dst``, replacing what is there; a folder is swapped so that
    ``dst`` is whole at every moment and restored if the swap fails."""
    try:
        if src.is_dir() and dst.is_dir():
            # the displaced folder waits in a `.staging-` folder: a killed run's is swept like any other
            old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.staging-", dir=dst.parent))
            os.replace(dst, old / dst.name)
            try:
                os.replace(src, dst)
            except BaseException:
                os.replace(old / dst.name, dst)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(src, dst)
    except OSError as exc:
        raise output_error(dst, exc) from exc


def publish(staged: Mapping[str, Path], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Move outputs written into a staging folder (e.g. by `export`) into ``out_dir``, each replacing its
    namesake; nothing else in ``out_dir`` is touched. Returns the same keys with the final paths."""
    out_dir = ensure_dir(out_dir)
    sweep_outputs(out_dir, [Path(path).name for path in staged.values()])
    final = {}
    for key, path in staged.items():
        target = out_dir / Path(path).name
        _replace(Path(path), target)
        final[key] = target
    return final


def export(
    result: VideoResult,
    out_dir: str | os.PathLike,
    formats: Sequence[str],
    *,
    video_id: int = 1,
) -> dict[str, Path]:
    """Write ``result`` into ``out_dir`` in each of ``formats`` (names in `FORMATS`); returns name -> path.

    Files: ``results.json`` (ytvis, with ``video_id``), ``coco_rle.json``, ``mots.txt``, ``masks/`` (png).
    Format names are checked before anything is written; other files in ``out_dir`` are left alone, and
    temporaries an interrupted earlier export left there are removed (`sweep_outputs`).
    """
    if isinstance(formats, str):
        formats = [formats]
    names = [str(f).strip().lower() for f in formats]
    unknown = [f for f, n in zip(formats, names, strict=True) if n not in FORMATS]
    if unknown:
        raise ConfigError(f"formats: expected names among {', '.join(FORMATS)}; got unknown {unknown}")
    out_dir = ensure_dir(out_dir)
    sweep_outputs(out_dir, [FILE_NAMES[name] for name in names])
    written: dict[str, Path] = {}
    for name in dict.fromkeys(names):
        target = out_dir / FILE_NAMES[name]
        if name == "ytvis":
            written[name] = save_ytvis_json(to_ytvis_results(result, video_id), target)
        elif name == "coco":
            written[name] = save_coco_rle_json(result, target)
        elif name == "mots":
            written[name] = save_mots_txt(result, target)
        else:
            written[name] = save_png_masks(result, target)
    return written
