"""Draw one frame's instances: coloured masks, boxes, a label at each mask (labels never cover each other)
and a legend of the frame's instances.

Colours are fixed per track id (`track_color`), so an object keeps its colour through the video and across
the PNG mask export. Labels are placed greedily, highest score first, at the first free spot around their
mask's box; a label that finds no free spot is left out, the legend still lists its instance.
"""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ifc_sdk.errors import ConfigError
from ifc_sdk.results.frames import FrameInstances

_GOLDEN = 0.618033988749895
_PAD = 2  # pixels between a label's text and its box edge

Rect = tuple[int, int, int, int]  # x1, y1, x2, y2 (exclusive)


def track_color(track_id: int) -> tuple[int, int, int]:
    """A distinct, fixed RGB colour for a track id (golden-ratio hues, alternating saturation/brightness)."""
    hue = (0.08 + track_id * _GOLDEN) % 1.0
    sat = (0.85, 0.6, 1.0)[track_id % 3]
    val = (1.0, 0.8, 0.9)[(track_id // 3) % 3]
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def default_font(height: int):
    """A font scaled to the frame height (10 to 32 px)."""
    size = max(10, min(32, height // 30))
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # pragma: no cover - Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _ink(color: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white text, whichever reads better on ``color``."""
    return (0, 0, 0) if 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2] > 150 else (255, 255, 255)


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def layout_labels(
    sizes: list[tuple[int, int]],
    boxes: np.ndarray,
    image_size: tuple[int, int],
    reserved: list[Rect] = (),
) -> list[Rect | None]:
    """Place labels of ``sizes[i] = (w, h)`` at boxes ``boxes[i] = [x1, y1, x2, y2]`` in order, each at the
    first spot that stays in the image and overlaps neither an earlier label nor a ``reserved`` rectangle;
    of the spots next to the box, one that also keeps clear of the other instances' boxes is preferred.

    Spots tried: above the box's top-left corner, inside it, below it, above/below its right end, right
    and left of it, its centre, then every label height along the box's left edge. Returns each label's rectangle, or None
    where no spot was free.
    """
    height, width = image_size
    corners = [tuple(int(v) for v in b) for b in np.asarray(boxes, dtype=np.float64).round().reshape(-1, 4)]
    taken = list(reserved)
    out: list[Rect | None] = []
    for i, ((w, h), (x1, y1, x2, y2)) in enumerate(zip(sizes, corners)):
        cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
        near = [(x1, y1 - h), (x1, y1), (x1, y2), (x2 - w, y1 - h), (x2 - w, y2), (x2, y1), (x1 - w, y1)]
        near.append((cx - w // 2, cy - h // 2))
        far = [(x1, y) for step in range(1, height // max(h, 1) + 1) for y in (y1 + step * h, y1 - step * h)]
        others = [b for j, b in enumerate(corners) if j != i]
        choice = {}  # "clear": next to the box, clear of other boxes; "near": next to it; "far"
        for k, (x, y) in enumerate(near + far if w <= width and h <= height else []):
            x, y = min(max(x, 0), width - w), min(max(y, 0), height - h)
            rect = (x, y, x + w, y + h)
            if any(_overlaps(rect, other) for other in taken):
                continue
            if k >= len(near):
                choice.setdefault("far", rect)
                break
            clear = not any(_overlaps(rect, b) for b in others)
            choice.setdefault("clear" if clear else "near", rect)
            if clear:
                break
        placed = choice.get("clear") or choice.get("near") or choice.get("far")
        if placed is not None:
            taken.append(placed)
        out.append(placed)
    return out


def _resize_nearest(masks: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of ``(N, h, w)`` masks, sampling at pixel centres."""
    if masks.shape[-2:] == (height, width):
        return masks
    rows = np.minimum(
        ((np.arange(height) + 0.5) * (masks.shape[-2] / height)).astype(np.int64), masks.shape[-2] - 1
    )
    cols = np.minimum(
        ((np.arange(width) + 0.5) * (masks.shape[-1] / width)).astype(np.int64), masks.shape[-1] - 1
    )
    return masks[:, rows][:, :, cols]


def label_text(frame: FrameInstances, i: int) -> str:
    """``"#<track> <class name> <score>"`` of instance ``i``."""
    name = frame.names[i] if frame.names[i] is not None else f"class {int(frame.labels[i])}"
    return f"#{frame.track_ids[i]} {name} {float(frame.scores[i]):.2f}"


def _legend(
    draw: ImageDraw.ImageDraw,
    rows: list[tuple[str, tuple[int, int, int] | None]],
    font,
    covered: np.ndarray,
) -> Rect | None:
    """Draw the legend rows (text, swatch colour or None) in the image corner ``covered`` (bool ``(H, W)``,
    the masks) is least set in; returns its rectangle. The legend takes at most half the image height (rows
    beyond become ``+N more``); an image too small for one row and its text gets none."""
    height, width = covered.shape
    line_h = max((draw.textbbox((0, 0), text, font=font)[3] for text, _ in rows), default=0) + _PAD
    swatch = line_h - _PAD
    fit = (height // 2 - _PAD) // line_h
    if not rows or fit < 1:
        return None
    if len(rows) > fit:
        rows = rows[: fit - 1] + [(f"+{len(rows) - fit + 1} more", None)]
    box_w = int(max(draw.textlength(text, font=font) for text, _ in rows)) + swatch + 3 * _PAD
    box_h = len(rows) * line_h + _PAD
    if box_w > width:
        return None
    corners = [(width - box_w, 0), (0, 0), (width - box_w, height - box_h), (0, height - box_h)]
    x0, y0 = min(corners, key=lambda c: covered[c[1] : c[1] + box_h, c[0] : c[0] + box_w].sum())
    draw.rectangle((x0, y0, x0 + box_w - 1, y0 + box_h - 1), fill=(0, 0, 0, 150))
    for r, (text, color) in enumerate(rows):
        x, y = x0 + _PAD, y0 + _PAD + r * line_h
        if color is not None:
            draw.rectangle((x, y, x + swatch - 1, y + swatch - 1), fill=color)
        draw.text((x + swatch + _PAD, y), text, fill=(255, 255, 255), font=font)
    return (x0, y0, x0 + box_w, y0 + box_h)


def draw_frame(
    image: np.ndarray,
    frame: FrameInstances,
    *,
    alpha: float = 0.5,
    font=None,
    legend: bool = True,
    score_threshold: float | None = None,
) -> np.ndarray:
    """Draw ``frame``'s masks, boxes, labels and legend over ``image`` (uint8 ``(H, W, 3)`` RGB); returns a
    new array. Masks are resized (nearest) when ``image`` differs from their size; higher-score instances
    are painted last, on top. ``score_threshold`` (when results were filtered) is named in the legend."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        desc = f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}"
        raise ConfigError(f"frame {frame.index}: expected a uint8 (H, W, 3) RGB array, got {desc}")
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha: expected a blending weight in [0, 1], got {alpha!r}")
    height, width = image.shape[:2]
    order = sorted(range(len(frame)), key=lambda i: (-float(frame.scores[i]), frame.track_ids[i]))
    out = image.astype(np.float32)
    masks = None
    if order:
        masks = _resize_nearest(frame.mask_array(), height, width)
        for i in reversed(order):
            color = np.asarray(track_color(frame.track_ids[i]), dtype=np.float32)
            out[masks[i]] = out[masks[i]] * (1.0 - alpha) + color * alpha
    canvas = Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas, "RGBA")
    font = font or default_font(height)
    mask_h, mask_w = frame.size if frame.size is not None else (height, width)
    boxes = frame.boxes_xyxy * np.array([width / mask_w, height / mask_h] * 2, dtype=np.float32)
    line = max(1, height // 240)
    for i in order:
        x1, y1, x2, y2 = boxes[i]
        draw.rectangle(
            (x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)), outline=track_color(frame.track_ids[i]), width=line
        )
    texts = [label_text(frame, i) for i in order]
    legend_rect = None
    if legend:
        rows = [(text, track_color(frame.track_ids[i])) for i, text in zip(order, texts)]
        if score_threshold:
            rows.insert(0, (f"score >= {score_threshold:.2f}", None))
        covered = masks.any(axis=0) if masks is not None else np.zeros((height, width), dtype=bool)
        legend_rect = _legend(draw, rows, font, covered)
    sizes = []
    for text in texts:
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        sizes.append((right - left + 2 * _PAD, bottom - top + 2 * _PAD))
    rects = layout_labels(sizes, boxes[order], (height, width), [legend_rect] if legend_rect else [])
    for i, text, rect in zip(order, texts, rects):
        if rect is None:
            continue
        color = track_color(frame.track_ids[i])
        left, top, _, _ = draw.textbbox((0, 0), text, font=font)
        draw.rectangle((rect[0], rect[1], rect[2] - 1, rect[3] - 1), fill=color)
        draw.text((rect[0] + _PAD - left, rect[1] + _PAD - top), text, fill=_ink(color), font=font)
    return np.asarray(canvas)
