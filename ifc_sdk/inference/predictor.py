"""Windowed video inference: frames in, per-frame instance masks out, streaming.

`VideoSegmenter` pulls frames one window at a time, computes each frame's states once (the `ClipModel`'s
per-frame part: backbone and per-frame layers, kept only while a later window still needs them), runs the
model's per-window heads, tracks instances with `ClipTracker` and releases each frame as soon as no later
window can change it. Its decisions equal the reference's video path; only what a later window can still use
is held, so memory does not grow with the video's length. It talks to the model only through the `ClipModel`
protocol (`ifc_sdk.inference.clip_model`): an exported graph runs through the same loop as the PyTorch `IFC`.

Windows follow the reference: a window of ``window`` frames starts every ``stride`` frames; the window that
reaches the last frame is shifted back to end there and is the last one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

from ifc_sdk.errors import ConfigError, VideoError
from ifc_sdk.inference.clip_model import ClipModel, EagerClipModel, as_clip_model
from ifc_sdk.inference.preprocess import resize_frames, resized_shape, to_tensor
from ifc_sdk.inference.rle import encode_masks_torch
from ifc_sdk.inference.tracker import ClipTracker
from ifc_sdk.inference.upsample import aligned_extent, resized_mask_rles
from ifc_sdk.modeling import kernels
from ifc_sdk.modeling.ifc import IFC
from ifc_sdk.results import RLE, FrameInstances, Track, VideoResult, frame_instances

# Frames per backbone batch by device type (VideoSegmenter's ``batch_frames``).
BATCH_FRAMES = {"cpu": 2, "default": 16}

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def positive_int(value: object, name: str, unit: str) -> int:
    """``value`` as an int if it is a positive integer (Python or numpy; a bool is not a number), else
    ConfigError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ConfigError(f"{name} must be a positive {unit}, got {value!r}")
    return int(value)


def check_window(window: int, stride: int) -> tuple[int, int]:
    """Validate window/stride before any work starts; returns them as ints."""
    window = positive_int(window, "window", "number of frames")
    stride = positive_int(stride, "stride", "number of frames")
    if stride > window:
        raise ConfigError(f"stride ({stride}) must not exceed window ({window}): frames would be skipped")
    return window, stride


def check_output_size(output_size: tuple[int, int] | None) -> tuple[int, int] | None:
    """Validate ``(height, width)`` of the masks (or None) before any work starts; returns ints."""
    if output_size is None:
        return None
    try:
        height, width = output_size
    except (TypeError, ValueError):
        raise ConfigError(
            f"output_size must be (height, width) in pixels or None, got {output_size!r}"
        ) from None
    return (
        positive_int(height, "output_size's height", "number of pixels"),
        positive_int(width, "output_size's width", "number of pixels"),
    )


MASK_RESIZES = ("reference", "aligned")


def check_mask_resize(mask_resize: str) -> str:
    """``mask_resize`` if it is one of `MASK_RESIZES`, else a `ConfigError`."""
    if mask_resize not in MASK_RESIZES:
        raise ConfigError(f"mask_resize must be one of {', '.join(MASK_RESIZES)}, got {mask_resize!r}")
    return mask_resize


class VideoSegmenter:
    """Streaming IFC inference over a sequence of RGB frames.

    Args:
        model: an `IFC` (run through `EagerClipModel`) or any `ClipModel`; its device is used.
        window: frames per window (the reference's ``SAMPLING_FRAME_NUM``).
        stride: frames between window starts (``CLIP_STRIDE``).
        size: short side frames are resized to (long side <= ``max_size``); None keeps them as they are.
        output_size: ``(height, width)`` of the masks; None = the frames' size.
        precision: "fp32", "bf16" or "fp16" (autocast; tracking always runs in fp32).
        keep_images: attach each input frame to its `FrameInstances` (e.g. to draw an overlay).
        source: the video's name, for error messages.
        batch_frames: frames per `ClipModel.frame_states` batch (default: 2 on the CPU, where small
            activations are reused by the allocator instead of being page-faulted in afresh, 16 elsewhere);
            batches of one frame are avoided. For an `IFC` on the CPU the per-frame parts of each window's
            heads run on as many frames at a time.
        mask_resize: how stride-8 mask logits become masks at the output size. "reference" (default): the
            reference's resize of the whole ``(ceil(h/8), ceil(w/8))`` map straight to the output size, which
            where the network input's side is not a multiple of 8 shifts masks towards the top-left (by up to
            7 input pixels at the far edges); "aligned": each cell over the input pixels it saw
            (`ifc_sdk.inference.upsample.aligned_extent`). The same where both sides are multiples of 8.

    For an `IFC` on CUDA the backbone runs in channels_last (NHWC) with FrozenBN folded into the convolutions
    (see `EagerClipModel`); the CPU path is the reference's computation. On the CPU, frames released together
    (the last window's, or a whole video that fits one window) have their masks encoded on
    ``torch.get_num_threads()`` threads.
    """

    def __init__(
        self,
        model: IFC | ClipModel,
        *,
        window: int,
        stride: int = 1,
        size: int | None = 360,
        max_size: int = 1333,
        output_size: tuple[int, int] | None = None,
        precision: str = "fp32",
        keep_images: bool = False,
        source: str | None = None,
        batch_frames: int | None = None,
        mask_resize: str = "reference",
    ) -> None:
        self.window, self.stride = check_window(window, stride)
        self.mask_resize = check_mask_resize(mask_resize)
        if batch_frames is not None:
            batch_frames = positive_int(batch_frames, "batch_frames", "number of frames")
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        if size is not None:
            size = positive_int(size, "size", "number of pixels (the short side) or None")
        self.size = size
        self.max_size = positive_int(max_size, "max_size", "number of pixels (the long side)")
        self.output_size = check_output_size(output_size)
        self.precision = precision
        self.keep_images = keep_images
        self.source = source
        self.model = as_clip_model(model)
        device = self.model.device
        if batch_frames is None:
            batch_frames = BATCH_FRAMES.get(device.type, BATCH_FRAMES["default"])
        self.batch_frames = batch_frames
        if isinstance(model, IFC) and device.type == "cpu":
            # On the CPU the per-frame parts of each window also run on `batch_frames` frames at a time.
            self.model = EagerClipModel(model, frame_chunk=batch_frames)
        self.tracker = ClipTracker(self.window)
        self.num_frames = 0
        self.input_size: tuple[int, int] | None = None
        self.network_size: tuple[int, int] | None = None  # (h, w) of the frames the model sees

    @property
    def tracks(self):
        """Track states (class probabilities final after the last frame)."""
        return self.tracker.tracks

    def _autocast(self):
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.model.device.type, dtype=dtype)

    def _frame_states(self, frames: list[np.ndarray]) -> dict[str, torch.Tensor]:
        """Resize a batch of frames to network size and compute the per-frame states the windows need
        (`ClipModel.frame_states`: once per frame however many windows the frame is in)."""
        x = to_tensor(np.stack(frames), self.model.device)  # (n, 3, H, W) uint8
        if self.size is not None:
            h, w = x.shape[-2:]
            x = resize_frames(x, resized_shape(h, w, self.size, self.max_size))  # (n, 3, h', w') uint8
        self.network_size = tuple(x.shape[-2:])
        with self._autocast():
            return self.model.frame_states(x)

    @torch.inference_mode()
    def _encode(self, ids: list[int], logits: torch.Tensor | None) -> tuple[list[int], list[RLE]]:
        """One frame's mean mask logits ``(n, h, w)`` -> the tracks with a non-empty mask and their RLEs at the
        output size."""
        if logits is None:
            return [], []
        height, width = self.output_size
        covers = self.output_size  # the reference: each map spans exactly the output
        if self.mask_resize == "aligned":
            covers = aligned_extent(logits.shape[-2:], self.network_size, self.output_size)
        if kernels.reference_kernels(logits.device):
            masks, areas = resized_mask_rles(logits, self.output_size, covers)
        else:  # resize, threshold and find the runs on the device; only run boundaries reach the host
            up = F.interpolate(logits[None], size=covers, mode="bilinear", align_corners=False)
            masks, areas = encode_masks_torch(up[0, :, :height, :width] > 0)
        keep = [i for i, a in enumerate(areas) if a > 0]
        return [ids[i] for i in keep], [masks[i] for i in keep]

    def _emit(
        self, upto: int | None, frames: dict[int, tuple[np.ndarray, float | None]]
    ) -> Iterator[FrameInstances]:
        released = {f: (ids, logits) for f, ids, logits in self.tracker.pop_frames(upto)}
        last = self.num_frames if upto is None else upto
        ready = sorted(i for i in frames if i < last)
        jobs = [released.get(f, ([], None)) for f in ready]  # (track ids, mean logits) per frame
        workers = min(torch.get_num_threads(), len(jobs))
        if workers > 1 and self.model.device.type == "cpu":
            # Several frames at once (a window's last frames, the whole video when it fits one window): their
            # masks are encoded on the CPU threads side by side (the array work releases the GIL).
            with ThreadPoolExecutor(workers, thread_name_prefix="ifc-masks") as pool:
                encoded = list(pool.map(lambda job: self._encode(*job), jobs))
        else:
            encoded = (self._encode(*job) for job in jobs)
        for f, (ids, masks) in zip(ready, encoded):
            image, timestamp = frames.pop(f)
            yield frame_instances(
                f,
                ids,
                masks,
                self.tracks,
                self.model.config.categories,
                size=self.output_size,
                timestamp=timestamp,
                image=image if self.keep_images else None,
                provisional=upto is not None,
            )

    @torch.inference_mode()
    def run(self, frames: Iterable[np.ndarray | tuple[np.ndarray, float | None]]) -> Iterator[FrameInstances]:
        """Segment a stream of uint8 ``(H, W, 3)`` RGB frames (or ``(frame, timestamp)`` pairs); yields every
        frame's final instances in frame order as soon as no later window can change them."""
        self.model.prepare()
        source = iter(frames)
        buffered: dict[int, tuple[np.ndarray, float | None]] = {}  # decoded frames not yet released
        features: dict[int, dict[str, torch.Tensor]] = {}  # per-frame `ClipModel.frame_states` still needed
        exhausted = False

        def fill(count: int) -> None:
            nonlocal exhausted
            while not exhausted and self.num_frames < count:
                item = next(source, None)
                if item is None:
                    exhausted = True
                    break
                image, timestamp = item if isinstance(item, tuple) else (item, None)
                self._check_frame(image)
                buffered[self.num_frames] = (image, timestamp)
                self.num_frames += 1

        def compute_features(clip: list[int]) -> None:
            # Frame states are computed on batches of `batch_frames` frames. A batch of one frame is avoided
            # (unless the video has one frame): oneDNN picks another convolution algorithm for it, and the
            # reference, which runs all frames at once, would differ in the last float bits. Batches of two or
            # more give bit-identical features whatever their size.
            while missing := [f for f in clip if f not in features]:
                first = missing[0]
                fill(first + self.batch_frames + 2)
                stop = min(first + self.batch_frames, self.num_frames)
                if self.num_frames - stop == 1:
                    stop += 1
                chunk = list(range(first, stop))
                feats = self._frame_states([buffered[f][0] for f in chunk])
                for j, f in enumerate(chunk):
                    features[f] = {k: v[j] for k, v in feats.items()}
                    if not self.keep_images:
                        buffered[f] = (None, buffered[f][1])

        start = 0
        while True:
            fill(start + self.window + 1)  # one frame beyond the window tells whether this window is the last
            if self.num_frames == 0:
                raise VideoError(self.source, "expected at least one video frame, found none")
            end = start + self.window
            last = end >= self.num_frames
            if last:
                start, end = max(0, self.num_frames - self.window), self.num_frames
            clip = list(range(start, end))
            compute_features(clip)
            stacked = {k: torch.stack([features[f][k] for f in clip]) for k in features[clip[0]]}
            with self._autocast():
                logits, masks = self.model.window_heads(stacked, len(clip))  # (Q, K+1), (Q, T, h8, w8)
            self.tracker.add_clip(clip, masks, logits)
            if last:
                yield from self._emit(None, buffered)
                return
            # Frames <= start are final: later windows, the shifted last one included, start after them.
            for f in [f for f in features if f <= start]:
                del features[f]
            yield from self._emit(start + 1, buffered)
            start += self.stride

    def _check_frame(self, image: np.ndarray) -> None:
        if (
            not isinstance(image, np.ndarray)
            or image.ndim != 3
            or image.shape[2] != 3
            or image.dtype != np.uint8
        ):
            desc = f"{type(image).__name__} {getattr(image, 'shape', '')} {getattr(image, 'dtype', '')}"
            raise ConfigError(f"frames must be uint8 (H, W, 3) RGB arrays, got {desc}")
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ConfigError(f"frame {self.num_frames} is empty: {image.shape[0]}x{image.shape[1]} pixels")
        if self.input_size is None:
            self.input_size = image.shape[:2]
            if self.output_size is None:
                self.output_size = self.input_size
        elif image.shape[:2] != self.input_size:
            raise ConfigError(
                f"all frames must have one size: frame {self.num_frames} is {image.shape[:2]}, "
                f"the first was {self.input_size}"
            )


def collect(
    segmenter: VideoSegmenter,
    stream: Iterable[FrameInstances],
    *,
    source: str | None = None,
    fps: float | None = None,
) -> VideoResult:
    """Drain a `VideoSegmenter.run` stream into a `VideoResult` (sparse per-track RLEs)."""
    per_track: dict[int, dict[int, RLE]] = {}
    timestamps: list[float | None] = []
    for frame in stream:
        timestamps.append(frame.timestamp)
        for track_id, rle in zip(frame.track_ids, frame.masks):
            per_track.setdefault(track_id, {})[frame.index] = rle
    categories = segmenter.model.config.categories
    size = segmenter.output_size
    tracks = [
        Track(t.id, t.class_probs, per_track.get(t.id, {}), segmenter.num_frames, size, categories)
        for t in segmenter.tracks
    ]
    has_ts = all(t is not None for t in timestamps) and timestamps
    return VideoResult(
        tracks=tracks,
        num_frames=segmenter.num_frames,
        size=size,
        source=source,
        fps=fps,
        timestamps=list(timestamps) if has_ts else None,
        categories=categories,
    )


def segment_frames(
    model: IFC | ClipModel,
    frames: np.ndarray | torch.Tensor,
    *,
    window: int,
    stride: int = 1,
    size: int | None = 360,
    max_size: int = 1333,
    output_size: tuple[int, int] | None = None,
    precision: str = "fp32",
    mask_resize: str = "reference",
) -> VideoResult:
    """Segment and track the instances of frames held in memory.

    Args:
        model: an `IFC` or a `ClipModel`.
        frames: uint8 ``(T, H, W, 3)`` RGB (numpy array or tensor).
        window: frames per clip (the reference's ``SAMPLING_FRAME_NUM``).
        stride: frames between clip starts (``CLIP_STRIDE``), 1 <= stride <= window.
        size: short side the frames are resized to (long side at most ``max_size``); None keeps them.
        output_size: ``(height, width)`` of the masks; defaults to the frames' size.
        precision: "fp32", or "bf16" / "fp16" autocast.
        mask_resize: "reference" or "aligned" (see `VideoSegmenter`).

    Returns:
        A `VideoResult`; ``result.predictions()`` gives the reference's output list.
    """
    if isinstance(frames, torch.Tensor):
        frames = frames.cpu().numpy()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ConfigError(f"frames must be uint8 (T, H, W, 3) RGB, got {frames.dtype} {frames.shape}")
    segmenter = VideoSegmenter(
        model,
        window=window,
        stride=stride,
        size=size,
        max_size=max_size,
        output_size=output_size,
        precision=precision,
        mask_resize=mask_resize,
    )
    return collect(segmenter, segmenter.run(iter(frames)))
