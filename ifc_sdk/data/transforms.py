"""Training augmentations and clip sampling of the reference IFC data mappers.

Videos (``YTVISDatasetMapper`` with ``base_ytvis.yaml``): a reference frame is drawn uniformly, the other T-1
frames are drawn without replacement from the frames within ``frame_range`` (20) of it (with replacement only
when the video is too short to fill the clip; the reference code draws with replacement and can therefore repeat
frames), and the clip is sorted. Then, one choice per clip: ``ResizeShortestEdge`` with the short side drawn
from ``min_sizes`` (``choice_by_clip``, (360, 480)) and the long side capped at ``max_size`` (1333), and a
horizontal flip with probability 0.5 (``flip_by_clip``).

COCO images (``CocoClipDatasetMapper`` with ``base_coco.yaml``): IFC's own ``build_augmentation`` order, not the
DETR "crop with probability 0.5" recipe: an ``absolute_range`` random crop (384-600 per side, clamped to the
image) is ALWAYS applied, then ``ResizeShortestEdge`` with the short side drawn from 480..800 step 32 (max
1333), then a horizontal flip with probability 0.5. The reference config uses one frame per image; for T > 1
copies we draw the crop size and the resize once per clip (so all frames share a size) and the crop position and
the flip per frame (a pseudo-video with motion), where the reference draws everything per frame and pads.

Images are resized like detectron2 (PIL bilinear on uint8, output size rounded with ``int(x + 0.5)``); masks
are decoded at the original size and transformed with nearest-neighbour resizing (detectron2 transforms
polygons geometrically and rasterises them afterwards, which can differ at borders). All randomness comes from
the ``random.Random`` passed to the mapper.

A mapper returns ``{"frames": uint8 (T, 3, H, W) RGB, "instances": [per frame {"gt_classes": (N,) int64,
"gt_ids": (N,) int64, "gt_masks": (N, H, W) bool}], "video_id": int, "frame_indices": [T ints]}`` where row n
is the same object in every frame; an object absent from a frame has class ``num_classes``, id -1 and an empty
mask, and an object whose transformed mask is empty keeps its class with id -1 (the reference
``filter_empty_instances``). This is the layout :func:`ifc_sdk.training.targets.prepare_targets` consumes.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from ifc_sdk.data.ytvis import InstanceTrack, VideoRecord
from ifc_sdk.errors import DatasetError
from ifc_sdk.inference.preprocess import resized_shape

YTVIS_MIN_SIZES = (360, 480)
COCO_MIN_SIZES = tuple(range(480, 801, 32))
COCO_CROP_RANGE = (384, 600)


def sample_frame_indices(length: int, num_frames: int, frame_range: int, rng: random.Random) -> list[int]:
    """Sorted indices of a training clip of ``num_frames`` frames from a video of ``length`` frames."""
    ref = rng.randrange(length)
    candidates = [i for i in range(max(0, ref - frame_range), min(length, ref + frame_range + 1)) if i != ref]
    if len(candidates) >= num_frames - 1:
        others = rng.sample(candidates, num_frames - 1)
    else:
        others = [rng.choice(candidates or [ref]) for _ in range(num_frames - 1)]
    return sorted([*others, ref])


@dataclass(frozen=True)
class FrameTransform:
    """Crop (optional) -> resize -> horizontal flip (optional) of one frame.

    Attributes:
        crop: ``(y0, x0, h, w)`` box in the source frame, or None.
        size: ``(H, W)`` after resizing.
        hflip: whether to flip horizontally.
    """

    crop: tuple[int, int, int, int] | None
    size: tuple[int, int]
    hflip: bool

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        """uint8 ``(h, w, 3)`` -> uint8 ``(H, W, 3)``, resized with PIL bilinear."""
        return self._apply(image, Image.BILINEAR)

    def apply_mask(self, mask: np.ndarray) -> np.ndarray:
        """bool ``(h, w)`` -> bool ``(H, W)``, resized with nearest neighbour."""
        return self._apply(mask.astype(np.uint8), Image.NEAREST).astype(bool)

    def _apply(self, array: np.ndarray, resample: int) -> np.ndarray:
        if self.crop is not None:
            y0, x0, h, w = self.crop
            array = array[y0 : y0 + h, x0 : x0 + w]
        if tuple(array.shape[:2]) != self.size:
            array = np.array(Image.fromarray(np.ascontiguousarray(array)).resize(self.size[::-1], resample))
        if self.hflip:
            array = array[:, ::-1]
        return np.ascontiguousarray(array)


def random_crop_size(
    height: int, width: int, crop_range: tuple[int, int], rng: random.Random
) -> tuple[int, int]:
    """detectron2 ``RandomCrop('absolute_range')`` size: each side uniform in ``crop_range``, clamped to the image."""
    lo, hi = crop_range
    return rng.randint(min(height, lo), min(height, hi)), rng.randint(min(width, lo), min(width, hi))


def random_crop_box(
    height: int, width: int, crop_h: int, crop_w: int, rng: random.Random
) -> tuple[int, int, int, int]:
    """A ``(y0, x0, crop_h, crop_w)`` box at a uniform position inside a ``height x width`` image."""
    return rng.randint(0, height - crop_h), rng.randint(0, width - crop_w), crop_h, crop_w


class _ClipMapper:
    """Shared part of the mappers: reading frames, decoding and transforming masks, building the layout."""

    def __init__(
        self, class_index: Mapping[int, int], min_sizes: Sequence[int], max_size: int, flip_prob: float
    ) -> None:
        if not min_sizes:
            raise ValueError("min_sizes must not be empty")
        self.class_index = dict(class_index)
        self.num_classes = len(self.class_index)
        self.min_sizes = tuple(min_sizes)
        self.max_size = max_size
        self.flip_prob = flip_prob

    def _build(
        self,
        record: VideoRecord,
        frame_indices: Sequence[int],
        transforms: Sequence[FrameTransform],
        instances: Sequence[InstanceTrack],
        ids: Sequence[int],
    ) -> dict[str, Any]:
        """Apply ``transforms[i]`` to frame ``frame_indices[i]`` and lay out ``instances`` (row n = ``ids[n]``)."""
        frames, per_frame = [], []
        images: dict[int, np.ndarray] = {}  # decoded once even when a frame is used several times
        raw_masks: dict[tuple[int, int], np.ndarray] = {}
        for frame, tf in zip(frame_indices, transforms, strict=True):
            if frame not in images:
                images[frame] = self._read(record, frame)
            image = tf.apply_image(images[frame])
            frames.append(torch.from_numpy(image).permute(2, 0, 1))
            classes, frame_ids, masks = [], [], []
            for n, (inst, inst_id) in enumerate(zip(instances, ids, strict=True)):
                if inst.is_present(frame):
                    if (n, frame) not in raw_masks:
                        raw_masks[n, frame] = inst.mask(frame)
                    mask = tf.apply_mask(raw_masks[n, frame])
                    classes.append(self.class_index[inst.category_id])
                    frame_ids.append(inst_id if mask.any() else -1)
                else:
                    mask = np.zeros(image.shape[:2], dtype=bool)
                    classes.append(self.num_classes)
                    frame_ids.append(-1)
                masks.append(torch.from_numpy(mask))
            per_frame.append(
                {
                    "gt_classes": torch.tensor(classes, dtype=torch.int64),
                    "gt_ids": torch.tensor(frame_ids, dtype=torch.int64),
                    "gt_masks": torch.stack(masks)
                    if masks
                    else torch.zeros((0, *image.shape[:2]), dtype=torch.bool),
                }
            )
        return {
            "frames": torch.stack(frames),
            "instances": per_frame,
            "video_id": record.id,
            "frame_indices": list(frame_indices),
        }

    @staticmethod
    def _read(record: VideoRecord, frame: int) -> np.ndarray:
        """Frame ``frame`` as uint8 ``(h, w, 3)``, checked against the annotated size."""
        image = record.read_frame(frame)
        if image.shape[:2] != (record.height, record.width):
            raise DatasetError(
                f"{record.frame_paths[frame]}: image is {image.shape[1]}x{image.shape[0]}, "
                f"the annotation says {record.width}x{record.height}"
            )
        return image


class YTVISClipMapper(_ClipMapper):
    """Training clips from a YouTube-VIS video (see the module docstring).

    Args:
        class_index: category id -> 0-based class (``ClipDataset.class_index``); ``num_classes`` is its length.
        num_frames: T, frames per clip.
        frame_range: the other frames are drawn within this distance of the reference frame.
        min_sizes: short-side choices (one per clip); max_size: cap of the long side.
        flip_prob: probability of flipping the whole clip horizontally.
        crop_range: ``absolute_range`` crop side range, or None (the reference recipe: no crop). Not in the
            reference's video recipe: one box per clip, the same in every frame, before the resize, so objects
            are cut by the box's edges as they are by the frame's when they enter or leave.
    """

    def __init__(
        self,
        class_index: Mapping[int, int],
        *,
        num_frames: int = 5,
        frame_range: int = 20,
        min_sizes: Sequence[int] = YTVIS_MIN_SIZES,
        max_size: int = 1333,
        flip_prob: float = 0.5,
        crop_range: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(class_index, min_sizes, max_size, flip_prob)
        self.num_frames = num_frames
        self.frame_range = frame_range
        self.crop_range = crop_range

    def __call__(self, video: VideoRecord, rng: random.Random) -> dict[str, Any]:
        """One augmented clip of ``video``; ``frames`` is uint8 ``(T, 3, H, W)``."""
        frame_indices = sample_frame_indices(len(video), self.num_frames, self.frame_range, rng)
        crop, (h, w) = None, (video.height, video.width)
        if self.crop_range:  # drawn only when enabled, so recipes without a crop draw what they always drew
            crop = random_crop_box(h, w, *random_crop_size(h, w, self.crop_range, rng), rng)
            h, w = crop[2:]
        size = resized_shape(h, w, rng.choice(self.min_sizes), self.max_size)
        tf = FrameTransform(crop=crop, size=size, hflip=rng.random() < self.flip_prob)
        instances = sorted(
            (i for i in video.instances if not i.iscrowd and any(i.is_present(f) for f in frame_indices)),
            key=lambda i: i.id,
        )
        return self._build(
            video, frame_indices, [tf] * len(frame_indices), instances, [i.id for i in instances]
        )


class COCOClipMapper(_ClipMapper):
    """Training (pseudo-)clips from a COCO image (see the module docstring).

    Args:
        class_index: category id -> 0-based class (``ClipDataset.class_index``).
        num_frames: T, augmented copies of the image per clip (1 in the reference COCO config).
        crop_range: ``absolute_range`` crop side range, or None for no crop.
        min_sizes, max_size: ``ResizeShortestEdge`` short-side choices and long-side cap.
        flip_prob: probability of a horizontal flip (per frame).
    """

    def __init__(
        self,
        class_index: Mapping[int, int],
        *,
        num_frames: int = 1,
        crop_range: tuple[int, int] | None = COCO_CROP_RANGE,
        min_sizes: Sequence[int] = COCO_MIN_SIZES,
        max_size: int = 1333,
        flip_prob: float = 0.5,
    ) -> None:
        super().__init__(class_index, min_sizes, max_size, flip_prob)
        self.num_frames = num_frames
        self.crop_range = crop_range

    def __call__(self, image: VideoRecord, rng: random.Random) -> dict[str, Any]:
        """``num_frames`` augmented copies of the single-frame record ``image``."""
        h, w = image.height, image.width
        crop_h, crop_w = random_crop_size(h, w, self.crop_range, rng) if self.crop_range else (h, w)
        size = resized_shape(crop_h, crop_w, rng.choice(self.min_sizes), self.max_size)
        transforms = []
        for _ in range(self.num_frames):
            crop = None
            if self.crop_range:
                crop = random_crop_box(h, w, crop_h, crop_w, rng)
            transforms.append(FrameTransform(crop=crop, size=size, hflip=rng.random() < self.flip_prob))
        instances = [i for i in image.instances if not i.iscrowd]
        return self._build(image, [0] * self.num_frames, transforms, instances, list(range(len(instances))))
