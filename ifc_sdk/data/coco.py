"""COCO instance segmentation datasets, each image a single-frame clip (for IFC's COCO pre-training).

Images are found under ``image_root/<file_name>``; ``image_root`` defaults to the JSON's folder, trying also
``<json folder>/images`` and, for the official layout ``annotations/instances_train2017.json``,
``<json folder>/../train2017``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ifc_sdk.data.ytvis import (
    ClipDataset,
    InstanceTrack,
    VideoRecord,
    check_category_ids,
    check_segmentations,
    find_base,
    load_json,
    parse_categories,
)
from ifc_sdk.errors import DatasetError


class COCODataset(ClipDataset):
    """A COCO instances split; ``videos[i]`` is image i as a one-frame ``VideoRecord``."""

    @classmethod
    def from_json(
        cls, json_path: str | os.PathLike, image_root: str | os.PathLike | None = None
    ) -> COCODataset:
        """Read a COCO instances JSON (``images``, ``annotations`` with polygon or RLE ``segmentation``).

        Raises:
            DatasetError: the JSON is missing or malformed, or an image cannot be found.
        """
        json_path = Path(json_path)
        data = load_json(json_path)
        if image_root is not None:
            bases = [Path(image_root)]
        else:
            folder = json_path.parent
            bases = [folder, folder / "images", folder.parent / json_path.stem.split("_")[-1]]
        try:
            categories = parse_categories(data)
            images = data["images"]
            if not isinstance(images, list):
                raise DatasetError(f"{json_path}: expected a list under 'images'")
            videos: dict[int, VideoRecord] = {}
            for img in images:
                file_name = str(img["file_name"])
                base = find_base(json_path, bases, file_name)
                videos[int(img["id"])] = VideoRecord(
                    id=int(img["id"]),
                    name=Path(file_name).stem,
                    height=int(img["height"]),
                    width=int(img["width"]),
                    frame_paths=[base / file_name],
                )
            for a in data.get("annotations") or []:
                video = videos.get(int(a["image_id"]))
                if video is None:
                    raise DatasetError(
                        f"{json_path}: annotation {a['id']} names unknown image {a['image_id']}"
                    )
                segm = a.get("segmentation")
                check_segmentations(json_path, a["id"], [segm], video.height, video.width)
                video.instances.append(
                    InstanceTrack(
                        id=int(a["id"]),
                        category_id=int(a["category_id"]),
                        segmentations=[segm],
                        height=video.height,
                        width=video.width,
                        iscrowd=bool(a.get("iscrowd", 0)),
                    )
                )
        except KeyError as exc:
            raise DatasetError(f"{json_path}: malformed COCO annotation (missing key {exc})") from None
        except (TypeError, ValueError) as exc:
            raise DatasetError(
                f"{json_path}: malformed COCO annotation ({type(exc).__name__}: {exc})"
            ) from None
        check_category_ids(json_path, categories, videos.values())
        return cls(json_path=json_path, categories=categories, videos=list(videos.values()))
