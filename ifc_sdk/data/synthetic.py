"""A synthetic video instance segmentation dataset: moving, rotating, occluding coloured shapes.

Each video shows 1-4 objects of five classes (circle, square, triangle, star, cross; each class has its own
colour) on a smooth, slowly panning noise-and-gradient background. Objects move on straight lines that may start
or end outside the frame (objects enter and leave), rotate and grow or shrink; a random depth order decides who
occludes whom. The masks are the exact visible pixels of each object, so the annotations are exact (the JPEG
frames are only approximately the rendered colours).

:func:`render_video` renders in memory; :func:`generate_dataset` writes YouTube-VIS (``annotations.json`` +
``JPEGImages/<video>/00000.jpg``) or COCO (``annotations.json`` + ``images/000000.jpg``) format. Output depends
only on the seed and the arguments (same seed -> byte-identical annotations).
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

from ifc_sdk.errors import ConfigError

SHAPE_CLASSES = ("circle", "square", "triangle", "star", "cross")
SHAPE_COLORS = {
    "circle": (215, 50, 50),
    "square": (45, 95, 225),
    "triangle": (240, 200, 30),
    "star": (40, 175, 70),
    "cross": (190, 60, 205),
}
DEFAULT_SIZE = (160, 224)
DEFAULT_FRAMES = (12, 24)


@dataclass
class SyntheticVideo:
    """A rendered video.

    Attributes:
        frames: uint8 ``(T, H, W, 3)`` RGB.
        masks: bool ``(N, T, H, W)`` visible pixels of each object (empty where it is out of view or hidden).
        classes: int64 ``(N,)`` 0-based index into ``SHAPE_CLASSES``.
    """

    frames: np.ndarray
    masks: np.ndarray
    classes: np.ndarray


def _shape_polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    """Vertices of a polygonal shape of circumradius ~``r`` rotated by ``angle`` (radians)."""
    if kind == "square":
        radii, angles = [r] * 4, [angle + math.pi / 4 + k * math.pi / 2 for k in range(4)]
    elif kind == "triangle":
        radii, angles = [1.15 * r] * 3, [angle + k * 2 * math.pi / 3 for k in range(3)]
    elif kind == "star":
        radii = [r if k % 2 == 0 else 0.45 * r for k in range(10)]
        angles = [angle + k * math.pi / 5 for k in range(10)]
    elif kind == "cross":
        a = 0.32 * r
        pts = [
            (a, r),
            (a, a),
            (r, a),
            (r, -a),
            (a, -a),
            (a, -r),
            (-a, -r),
            (-a, -a),
            (-r, -a),
            (-r, a),
            (-a, a),
            (-a, r),
        ]
        c, s = math.cos(angle), math.sin(angle)
        return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts]
    else:
        raise ValueError(f"unknown shape {kind!r}")
    return [(cx + rr * math.cos(t), cy + rr * math.sin(t)) for rr, t in zip(radii, angles, strict=True)]


def _shape_mask(
    kind: str, height: int, width: int, cx: float, cy: float, r: float, angle: float
) -> np.ndarray:
    """Bool ``(H, W)`` rasterised shape (no anti-aliasing)."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
    else:
        draw.polygon(_shape_polygon(kind, cx, cy, r, angle), fill=1)
    return np.asarray(canvas, dtype=bool)


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: tuple[int, int]) -> np.ndarray:
    """float32 ``(H, W, 3)`` in [0, 1]: random values on a coarse grid, bicubically upsampled."""
    coarse = (rng.random((cells[0], cells[1], 3)) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), dtype=np.float32) / 255


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """float32 ``(H, W, 3)`` muted background: gradient + smooth noise + fine texture."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    theta = rng.uniform(0, 2 * math.pi)
    ramp = (xx * math.cos(theta) + yy * math.sin(theta)) / max(height, width)
    c0, c1 = rng.uniform(70, 170, 3), rng.uniform(70, 170, 3)
    base = c0 + (c1 - c0) * ((ramp - ramp.min()) / (np.ptp(ramp) + 1e-6))[..., None]
    coarse = _smooth_noise(rng, height, width, (4, 5)) - 0.5
    fine = _smooth_noise(rng, height, width, (max(2, height // 8), max(2, width // 8))) - 0.5
    gray = base.mean(-1, keepdims=True)
    muted = gray + 0.5 * (base - gray)  # low saturation so the objects stand out
    return muted + 50 * coarse.mean(-1, keepdims=True) + 20 * coarse + 30 * fine.mean(-1, keepdims=True)


def _num_frames(rng: np.random.Generator, num_frames: int | Sequence[int]) -> int:
    if isinstance(num_frames, int):
        return num_frames
    lo, hi = num_frames
    return int(rng.integers(lo, hi + 1))


def render_video(
    seed: int | Sequence[int],
    *,
    height: int = DEFAULT_SIZE[0],
    width: int = DEFAULT_SIZE[1],
    num_frames: int | Sequence[int] = DEFAULT_FRAMES,
    max_objects: int = 4,
) -> SyntheticVideo:
    """Render one video; ``num_frames`` is a count or an inclusive ``(min, max)`` range drawn from the seed.

    Objects that end up never visible (hidden behind others the whole time) are left out, so N can be smaller
    than the number drawn (1..``max_objects``).
    """
    rng = np.random.default_rng(seed)
    t_len = _num_frames(rng, num_frames)
    n_obj = int(rng.integers(1, max_objects + 1))
    side = min(height, width)

    pad = max(8, side // 6)  # the background pans over a larger canvas
    canvas = _background(rng, height + 2 * pad, width + 2 * pad)
    pan0 = rng.uniform(0, 2 * pad, 2)
    pan1 = np.clip(pan0 + rng.uniform(-pad, pad, 2), 0, 2 * pad)

    objects = []
    for _ in range(n_obj):
        kind = SHAPE_CLASSES[int(rng.integers(len(SHAPE_CLASSES)))]
        mid = rng.uniform(0.15, 0.85, 2) * (width, height)
        heading = rng.uniform(0, 2 * math.pi)
        travel = rng.uniform(0.2, 1.3) * max(height, width)
        step = np.array([math.cos(heading), math.sin(heading)]) * travel / 2
        objects.append(
            {
                "kind": kind,
                "start": mid - step,
                "end": mid + step,
                "radius": rng.uniform(0.1, 0.22) * side,
                "growth": rng.uniform(-0.25, 0.25),
                "angle": rng.uniform(0, 2 * math.pi),
                "spin": rng.uniform(-0.15, 0.15),
                "color": np.clip(np.array(SHAPE_COLORS[kind]) + rng.uniform(-20, 20, 3), 0, 255),
                "light": rng.uniform(-1, 1, 2),
            }
        )
    depth_order = rng.permutation(n_obj)  # depth_order[0] is the front-most object

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((t_len, height, width, 3), dtype=np.uint8)
    masks = np.zeros((n_obj, t_len, height, width), dtype=bool)
    for t in range(t_len):
        s = t / (t_len - 1) if t_len > 1 else 0.5
        oy, ox = (pan0 + (pan1 - pan0) * s).round().astype(int)
        frame = canvas[oy : oy + height, ox : ox + width].copy()
        occupied = np.zeros((height, width), dtype=bool)
        for idx in depth_order:  # front to back: each object keeps the pixels nobody in front took
            obj = objects[idx]
            cx, cy = obj["start"] + (obj["end"] - obj["start"]) * s
            r = obj["radius"] * (1 + obj["growth"] * s)
            full = _shape_mask(obj["kind"], height, width, cx, cy, r, obj["angle"] + obj["spin"] * t)
            visible = full & ~occupied
            occupied |= full
            masks[idx, t] = visible
            lx, ly = obj["light"]
            shade = 1 + 0.25 * np.clip(((xx - cx) * lx + (yy - cy) * ly) / r, -1, 1)
            frame[visible] = obj["color"] * shade[visible][:, None]
        frames[t] = np.clip(frame, 0, 255).round().astype(np.uint8)

    keep = masks.reshape(n_obj, -1).any(1)
    classes = np.array([SHAPE_CLASSES.index(o["kind"]) for o in objects], dtype=np.int64)
    return SyntheticVideo(frames=frames, masks=masks[keep], classes=classes[keep])


def _encode(mask: np.ndarray) -> tuple[dict[str, Any], int, list[float]]:
    """Compressed RLE (``counts`` as str), area and ``[x, y, w, h]`` box of a bool ``(H, W)`` mask."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    area = int(mask_utils.area(rle))
    bbox = [float(v) for v in mask_utils.toBbox(rle)]
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}, area, bbox


def _categories() -> list[dict[str, Any]]:
    return [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(SHAPE_CLASSES)]


def _save_jpeg(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="JPEG", quality=92)


def generate_dataset(
    out_dir: str | os.PathLike,
    *,
    num_videos: int,
    seed: int,
    fmt: str = "ytvis",
    height: int = DEFAULT_SIZE[0],
    width: int = DEFAULT_SIZE[1],
    num_frames: int | Sequence[int] = DEFAULT_FRAMES,
    max_objects: int = 4,
    progress: Callable[[], None] | None = None,
) -> Path:
    """Write a synthetic dataset to ``out_dir`` and return the path of its ``annotations.json``.

    Args:
        fmt: ``"ytvis"`` (videos) or ``"coco"`` (``num_videos`` single images).
        num_frames: frames per video, a count or an inclusive ``(min, max)`` range (ignored for COCO).
        progress: called once after each video.

    The dataset is written into a temporary folder beside ``out_dir`` and renamed into place at the end, so
    ``out_dir`` never holds a partial dataset. ``out_dir`` must not exist or be an empty folder.
    """
    if fmt not in ("ytvis", "coco"):
        raise ConfigError(f"format must be 'ytvis' or 'coco', got {fmt!r}")
    if num_videos < 1:
        raise ConfigError(f"num_videos must be >= 1, got {num_videos}")
    if min(height, width) < 16:
        raise ConfigError(f"frame size must be at least 16x16, got {height}x{width}")
    frame_counts = [num_frames] if isinstance(num_frames, int) else list(num_frames)
    if len(frame_counts) not in (1, 2) or min(frame_counts) < 1 or frame_counts[0] > frame_counts[-1]:
        raise ConfigError(f"num_frames must be a count >= 1 or a (min, max) range, got {num_frames!r}")
    if max_objects < 1:
        raise ConfigError(f"max_objects must be >= 1, got {max_objects}")
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ConfigError(f"{out_dir} already exists and is not an empty folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)

    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        render = functools.partial(render_video, height=height, width=width, max_objects=max_objects)
        if fmt == "ytvis":
            data = _write_ytvis(
                tmp, num_videos, seed, functools.partial(render, num_frames=num_frames), progress
            )
        else:
            data = _write_coco(tmp, num_videos, seed, functools.partial(render, num_frames=1), progress)
        (tmp / "annotations.json").write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir / "annotations.json"


def _write_ytvis(
    root: Path,
    num_videos: int,
    seed: int,
    render: Callable[[tuple[int, int]], SyntheticVideo],
    progress: Callable[[], None] | None,
) -> dict[str, Any]:
    """Write the frames of ``num_videos`` videos under ``root/JPEGImages``; return the YouTube-VIS JSON."""
    videos, annotations = [], []
    for v in range(num_videos):
        video = render((seed, v))
        height, width = video.frames.shape[1:3]
        name = f"video{v:05d}"
        file_names = [f"{name}/{t:05d}.jpg" for t in range(len(video.frames))]
        for file_name, frame in zip(file_names, video.frames, strict=True):
            _save_jpeg(frame, root / "JPEGImages" / file_name)
        videos.append(
            {
                "id": v + 1,
                "name": name,
                "width": width,
                "height": height,
                "length": len(file_names),
                "file_names": file_names,
            }
        )
        for masks, cls in zip(video.masks, video.classes, strict=True):
            segms, areas, bboxes = [], [], []
            for mask in masks:
                if mask.any():
                    rle, area, bbox = _encode(mask)
                else:
                    rle, area, bbox = None, None, None
                segms.append(rle)
                areas.append(area)
                bboxes.append(bbox)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "video_id": v + 1,
                    "category_id": int(cls) + 1,
                    "iscrowd": 0,
                    "width": width,
                    "height": height,
                    "length": 1,
                    "segmentations": segms,
                    "areas": areas,
                    "bboxes": bboxes,
                }
            )
        if progress is not None:
            progress()
    info = {"description": "ifc_sdk synthetic shapes (YouTube-VIS format)", "seed": seed}
    return {"info": info, "videos": videos, "annotations": annotations, "categories": _categories()}


def _write_coco(
    root: Path,
    num_images: int,
    seed: int,
    render: Callable[[tuple[int, int]], SyntheticVideo],
    progress: Callable[[], None] | None,
) -> dict[str, Any]:
    """Write ``num_images`` single-frame renders under ``root/images``; return the COCO instances JSON."""
    images, annotations = [], []
    for i in range(num_images):
        video = render((seed, i))
        height, width = video.frames.shape[1:3]
        file_name = f"{i:06d}.jpg"
        _save_jpeg(video.frames[0], root / "images" / file_name)
        images.append({"id": i + 1, "file_name": file_name, "height": height, "width": width})
        for masks, cls in zip(video.masks, video.classes, strict=True):
            rle, area, bbox = _encode(masks[0])
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": int(cls) + 1,
                    "iscrowd": 0,
                    "segmentation": rle,
                    "area": area,
                    "bbox": bbox,
                }
            )
        if progress is not None:
            progress()
    info = {"description": "ifc_sdk synthetic shapes (COCO format)", "seed": seed}
    return {"info": info, "images": images, "annotations": annotations, "categories": _categories()}
