"""YouTube-VIS 2019/2021 datasets: an annotation JSON plus per-video JPEG frame folders.

The JSON has ``videos`` (``id``, ``height``, ``width``, ``file_names``), ``annotations`` (``id``, ``video_id``,
``category_id``, ``segmentations``: one entry per frame, a compressed or uncompressed RLE, a polygon list or
null) and ``categories``. Frames are found under ``<root>/JPEGImages/<file_name>`` or ``<root>/<file_name>``;
``root`` defaults to the JSON's folder (also trying ``<json folder>/<json stem>/JPEGImages``, the layout of the
official ``train.json`` + ``train/JPEGImages``). Masks are decoded lazily, one frame at a time, with pycocotools.
The record types here are shared with the COCO reader (:mod:`ifc_sdk.data.coco`).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from ifc_sdk.errors import DatasetError

Segmentation = dict[str, Any] | list[list[float]] | None


@dataclass(frozen=True)
class Category:
    """A dataset category: its id in the JSON and its name."""

    id: int
    name: str


@dataclass
class InstanceTrack:
    """One annotated object of a video.

    Attributes:
        id: annotation id in the JSON.
        category_id: category id in the JSON (see ``ClipDataset.class_index`` for the 0-based class).
        segmentations: the raw per-frame segmentation (RLE dict, polygons or None when absent).
        height, width: frame size, needed to decode polygons and uncompressed RLE.
        iscrowd: crowd annotations are skipped by the training mappers.
    """

    id: int
    category_id: int
    segmentations: list[Segmentation]
    height: int
    width: int
    iscrowd: bool = False

    def is_present(self, frame: int) -> bool:
        """Whether the object has a segmentation in ``frame``."""
        return self._rle(frame) is not None

    def mask(self, frame: int) -> np.ndarray:
        """Boolean mask ``(H, W)`` of ``frame`` (all False where the object is absent)."""
        rle = self._rle(frame)
        if rle is None:
            return np.zeros((self.height, self.width), dtype=bool)
        with warnings.catch_warnings():  # pycocotools' Cython decode warns under numpy 2 (harmless)
            warnings.simplefilter("ignore", DeprecationWarning)
            return mask_utils.decode(rle).astype(bool)

    def _rle(self, frame: int) -> dict[str, Any] | None:
        """Compressed RLE of ``frame``, or None when absent (null or no valid polygon)."""
        segm = self.segmentations[frame]
        if not segm:
            return None
        if isinstance(segm, dict):
            if isinstance(segm["counts"], list):
                return mask_utils.frPyObjects(segm, self.height, self.width)
            return segm
        polygons = [p for p in segm if len(p) % 2 == 0 and len(p) >= 6]
        if not polygons:
            return None
        return mask_utils.merge(mask_utils.frPyObjects(polygons, self.height, self.width))


@dataclass
class VideoRecord:
    """One video (or one image as a single-frame clip) with its annotated objects."""

    id: int
    name: str
    height: int
    width: int
    frame_paths: list[Path]
    instances: list[InstanceTrack] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frame_paths)

    def read_frame(self, frame: int) -> np.ndarray:
        """Frame ``frame`` as uint8 RGB ``(H, W, 3)``."""
        path = self.frame_paths[frame]
        try:
            with Image.open(path) as img:
                return np.array(img.convert("RGB"))
        except FileNotFoundError:
            raise DatasetError(f"{path}: frame {frame} of video {self.name!r} not found") from None
        except OSError as exc:
            raise DatasetError(f"{path}: cannot read frame {frame} of video {self.name!r}: {exc}") from None


@dataclass
class ClipDataset:
    """Videos (or single-frame clips) plus categories read from one annotation JSON."""

    json_path: Path
    categories: list[Category]
    videos: list[VideoRecord]

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> VideoRecord:
        return self.videos[index]

    def __iter__(self) -> Iterator[VideoRecord]:
        return iter(self.videos)

    @property
    def num_classes(self) -> int:
        return len(self.categories)

    @property
    def class_index(self) -> dict[int, int]:
        """Category id -> contiguous 0-based class index (categories sorted by id)."""
        return {c.id: i for i, c in enumerate(sorted(self.categories, key=lambda c: c.id))}

    @property
    def class_names(self) -> list[str]:
        """Category names indexed by the 0-based class."""
        return [c.name for c in sorted(self.categories, key=lambda c: c.id)]


class YTVISDataset(ClipDataset):
    """A YouTube-VIS 2019/2021 split."""

    @classmethod
    def from_json(cls, json_path: str | os.PathLike, root: str | os.PathLike | None = None) -> YTVISDataset:
        """Read ``json_path``; frames are looked up under ``root`` (see the module docstring).

        Raises:
            DatasetError: the JSON is missing or malformed, or a video's first frame cannot be found.
        """
        json_path = Path(json_path)
        data = load_json(json_path)
        bases = frame_bases(json_path, root)
        try:
            categories = parse_categories(data)
            videos: dict[int, VideoRecord] = {}
            for v in _list(data, "videos", json_path):
                file_names = [str(f) for f in v["file_names"]]
                if not file_names:
                    raise DatasetError(f"{json_path}: video {v['id']} has no file_names")
                base = find_base(json_path, bases, file_names[0])
                name = str(v.get("name") or Path(file_names[0]).parent.as_posix())
                videos[int(v["id"])] = VideoRecord(
                    id=int(v["id"]),
                    name=name,
                    height=int(v["height"]),
                    width=int(v["width"]),
                    frame_paths=[base / f for f in file_names],
                )
            for a in data.get("annotations") or []:
                video = videos.get(int(a["video_id"]))
                if video is None:
                    raise DatasetError(
                        f"{json_path}: annotation {a['id']} names unknown video {a['video_id']}"
                    )
                segms = list(a["segmentations"])
                if len(segms) != len(video):
                    raise DatasetError(
                        f"{json_path}: annotation {a['id']} has {len(segms)} segmentations, "
                        f"video {video.id} has {len(video)} frames"
                    )
                check_segmentations(json_path, a["id"], segms, video.height, video.width)
                video.instances.append(
                    InstanceTrack(
                        id=int(a["id"]),
                        category_id=int(a["category_id"]),
                        segmentations=segms,
                        height=video.height,
                        width=video.width,
                        iscrowd=bool(a.get("iscrowd", 0)),
                    )
                )
        except KeyError as exc:
            raise DatasetError(f"{json_path}: malformed YouTube-VIS annotation (missing key {exc})") from None
        except (TypeError, ValueError) as exc:
            raise DatasetError(
                f"{json_path}: malformed YouTube-VIS annotation ({type(exc).__name__}: {exc})"
            ) from None
        check_category_ids(json_path, categories, videos.values())
        return cls(json_path=json_path, categories=categories, videos=list(videos.values()))


def load_json(path: Path) -> dict[str, Any]:
    """Parse a JSON object from ``path``, raising DatasetError naming the file on failure."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise DatasetError(f"{path}: annotation file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: malformed JSON: {exc}") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read annotation file: {exc}") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object at the top level, found {type(data).__name__}")
    return data


def _list(data: dict[str, Any], key: str, path: Path) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise DatasetError(f"{path}: expected a list under {key!r}, found {type(value).__name__}")
    return value


def parse_categories(data: dict[str, Any]) -> list[Category]:
    """The ``categories`` list of a YouTube-VIS or COCO JSON."""
    return [Category(id=int(c["id"]), name=str(c["name"])) for c in data.get("categories") or []]


def check_category_ids(path: Path, categories: Sequence[Category], videos: Any) -> None:
    """Raise DatasetError if an annotation names a category that is not in ``categories``."""
    known = {c.id for c in categories}
    for video in videos:
        for inst in video.instances:
            if inst.category_id not in known:
                raise DatasetError(f"{path}: annotation {inst.id} has unknown category_id {inst.category_id}")


def check_segmentations(
    path: Path, ann_id: Any, segms: Sequence[Segmentation], height: int, width: int
) -> None:
    """Raise DatasetError if an RLE's size disagrees with the frame size or a segmentation has a bad type."""
    for segm in segms:
        if isinstance(segm, dict):
            if list(segm.get("size", [])) != [height, width] or "counts" not in segm:
                raise DatasetError(
                    f"{path}: annotation {ann_id}: RLE of size {segm.get('size')} in a {height}x{width} frame"
                )
        elif segm is not None and not isinstance(segm, list):
            raise DatasetError(f"{path}: annotation {ann_id}: unsupported segmentation {type(segm).__name__}")


def frame_bases(json_path: Path, root: str | os.PathLike | None) -> list[Path]:
    """Folders that file names may be relative to, in order of preference."""
    if root is not None:
        root = Path(root)
        return [root / "JPEGImages", root]
    folder = json_path.parent
    return [folder / "JPEGImages", folder, folder / json_path.stem / "JPEGImages"]


def find_base(json_path: Path, bases: Sequence[Path], file_name: str) -> Path:
    """The first of ``bases`` under which ``file_name`` exists."""
    for base in bases:
        if (base / file_name).is_file():
            return base
    tried = ", ".join(str(b / file_name) for b in bases)
    raise DatasetError(f"{json_path}: image {file_name!r} not found (tried {tried})")
