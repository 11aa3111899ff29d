"""The top-level API: `load_model` and `segment_video`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import torch

from ifc_sdk.errors import ConfigError
from ifc_sdk.inference.predictor import PRECISIONS, FrameInstances, VideoSegmenter, check_window, collect
from ifc_sdk.modeling.ifc import IFC
from ifc_sdk.results import FrameKeeper, TrackSummary, VideoResult, track_summaries

DEFAULT_INFERENCE = {"window": 5, "stride": 1, "size": 360}


def inference_defaults(model_source) -> dict[str, int]:
    """``{"window", "stride", "size"}`` recommended for a model: the manifest entry's settings for a manifest
    name, otherwise (a path, ``hf://``, a loaded model) window 5, stride 1, size 360 (the paper's R50 setting)."""
    out = dict(DEFAULT_INFERENCE)
    if isinstance(model_source, str) and "://" not in model_source and not Path(model_source).exists():
        from ifc_sdk.errors import WeightsError
        from ifc_sdk.weights import get_model_entry

        try:
            entry = get_model_entry(model_source)
        except WeightsError:
            return out
        out["window"] = int(entry.inference.get("window", out["window"]))
        out["stride"] = int(entry.inference.get("stride", out["stride"]))
        out["size"] = int(entry.inference.get("size", entry.input.get("min_size_test", out["size"])))
    return out


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return default_device()
    try:
        device = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"invalid device {device!r}: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {str(device)!r} was asked for, but CUDA is not available on this machine")
    return device


def load_model(
    source: str | os.PathLike | IFC,
    *,
    preset: str | None = None,
    device: str | torch.device | None = None,
    trusted: bool = False,
    **overrides,
) -> IFC:
    """Load an IFC model in eval mode on ``device`` (default: CUDA if available, else CPU).

    Args:
        source: a model name from the weights manifest (``"r50"``, ``"r101"``, ``"shapes-demo"``, see
            `list_models`), ``hf://owner/repo[@revision]``, a local reference ``.pth``, a ``.safetensors`` file
            or a folder in this SDK's format, or an already built `IFC`.
        preset: for a ``.pth``: the preset ("r50", "r101") that supplies what weights cannot tell (channel
            order, pixel statistics, ``stride_in_1x1``); default: the one of the depth found in the weights.
        trusted: allow a full (code-executing) unpickle of a ``.pth`` whose origin you trust.
        overrides: further `IFCConfig` fields, e.g. ``categories``.
    """
    from ifc_sdk.checkpoint import load_checkpoint
    from ifc_sdk.weights import is_remote_source, load_pretrained_weights

    device = resolve_device(device)
    if isinstance(source, IFC):
        model = source
    elif is_remote_source(source):
        model = load_pretrained_weights(str(source), **overrides)
    else:
        model = load_checkpoint(source, preset=preset, trusted=trusted, **overrides)
    return model.to(device).eval()


class VideoStream:
    """Iterates a video's frames with their final instance masks as soon as they are known.

    Each item is a `FrameInstances` (frame index, timestamp, track ids and their RLE masks). Track class scores
    are final only once the stream is exhausted: call `result` then (or read `tracks`).
    """

    def __init__(self, segmenter: VideoSegmenter, frames: Iterator[FrameInstances], reader, progress) -> None:
        self.segmenter = segmenter
        self._frames = frames
        self._reader = reader
        self._progress = progress
        self._kept: list[FrameInstances] = []
        self.finished = False

    def __iter__(self) -> Iterator[FrameInstances]:
        try:
            for frame in self._frames:
                if self._progress is not None:
                    self._progress.update(1)
                yield frame
            self.finished = True
        finally:
            self.close()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.close()
        self._reader.close()

    @property
    def tracks(self) -> list[TrackSummary]:
        """Each track's id, label, class name and score so far (``provisional`` until the stream is exhausted)."""
        return track_summaries(
            self.segmenter.tracks, self.segmenter.model.config.categories, not self.finished
        )


def _load_for_inference(model: str | IFC, device) -> IFC:
    if isinstance(model, IFC):
        return model.to(resolve_device(device) if device is not None else model.device).eval()
    return load_model(model, device=device)


def segment_video(
    source: str | os.PathLike,
    model: str | IFC = "r50",
    *,
    window: int | None = None,
    stride: int = 1,
    size: int | None = 360,
    output_size: tuple[int, int] | None = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    progress: bool = True,
    stream: bool = False,
    keep_frames: bool = False,
) -> VideoResult | VideoStream:
    """Segment and track every object instance in a video file or a folder of frames.

    Frames are decoded in a background thread and pulled one window at a time; memory does not grow with the
    video's length.

    Args:
        source: a video file (anything PyAV/FFmpeg decodes) or a folder of frame images (YouTube-VIS layout).
        model: a loaded `IFC` or a name/path for `load_model`.
        window: frames per window (default 5, the paper's R50 setting; the reference's SAMPLING_FRAME_NUM).
        stride: frames between window starts (1 <= stride <= window).
        size: short side the frames are resized to (360 as in the paper); None keeps the source size.
        output_size: ``(height, width)`` of the masks; default the displayed size of the source.
        device: where the model runs (default: the model's device for a loaded model, else CUDA if available).
        precision: "fp32", "bf16" or "fp16" (autocast on the model's device).
        progress: show a tqdm bar (frames, fps).
        stream: return a `VideoStream` that yields each frame's final masks as soon as they are known.
        keep_frames: keep the decoded frames (``result.images``, or ``frame.image`` when streaming), so that
            `VideoResult.plot` and `VideoResult.save_overlay` draw on them without decoding the video again.

    Returns:
        A `VideoResult` (tracks, per-frame RLE masks, fps, timestamps), or a `VideoStream` with ``stream``.
    """
    from ifc_sdk.io.video import open_video

    window = DEFAULT_INFERENCE["window"] if window is None else window
    check_window(window, stride)
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    model = _load_for_inference(model, device)
    reader = open_video(source, prefetch=max(16, 2 * window))
    segmenter = VideoSegmenter(
        model,
        window=window,
        stride=stride,
        size=size,
        output_size=output_size,
        precision=precision,
        keep_images=keep_frames,
        source=str(reader.path),
    )
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=reader.num_frames_hint or None,
            unit="frame",
            desc=Path(reader.path).name,
            dynamic_ncols=True,
        )
    frames = segmenter.run((frame.image, frame.timestamp) for frame in reader)
    video = VideoStream(segmenter, frames, reader, bar)
    if stream:
        return video
    kept = FrameKeeper(video) if keep_frames else None
    result = collect(segmenter, video if kept is None else kept, source=str(reader.path), fps=reader.fps)
    result.images = None if kept is None else kept.images
    return result
