"""The top-level API: `load_model` and `segment_video`."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import torch

from ifc_sdk.errors import ConfigError, VideoError
from ifc_sdk.export import ExportInfo, RuntimeClipModel, is_export_dir, load_exported
from ifc_sdk.export.metadata import RECOMMENDED_ATTRIBUTE
from ifc_sdk.inference.predictor import (
    PRECISIONS,
    FrameInstances,
    VideoSegmenter,
    check_output_size,
    check_window,
    positive_int,
)
from ifc_sdk.inference.preprocess import resized_shape
from ifc_sdk.io.reader import DEFAULT_TIMEOUT, MAX_PIXELS, check_policy
from ifc_sdk.modeling.ifc import IFC
from ifc_sdk.results import (
    RLE,
    FrameKeeper,
    Track,
    TrackSummary,
    VideoResult,
    frame_instances,
    track_summaries,
)

DEFAULT_INFERENCE = {"window": 5, "stride": 1, "size": 360}
MAX_SIZE = 1333  # the reference's MAX_SIZE_TEST: the long side after resizing stays below it


def inference_defaults(model_source) -> dict[str, int]:
    """``{"window", "stride", "size"}`` recommended for a model: the manifest entry's settings for a manifest
    name or a model `load_model` loaded by one (or an export of one, its folder or its loaded runtime model),
    otherwise (a path, ``hf://``, another model) window 5, stride 1, size 360 (the paper's R50 setting)."""
    out = dict(DEFAULT_INFERENCE)
    recommended = getattr(model_source, RECOMMENDED_ATTRIBUTE, None)
    if isinstance(recommended, dict):
        return {**out, **recommended}
    if isinstance(model_source, (str, os.PathLike)) and is_export_dir(model_source):
        return {**out, **(ExportInfo.read(model_source).inference or {})}
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
            or a folder in this SDK's format, or an already built `IFC`. A folder written by `ifc_sdk.export`
            gives a runtime-backed `RuntimeClipModel` instead (CPU; ``device="cuda"``: onnxruntime's GPU
            providers), which `segment_video` runs the same way.
        preset: for a ``.pth``: the preset ("r50", "r101") that supplies what weights cannot tell (channel
            order, pixel statistics, ``stride_in_1x1``); default: the one of the depth found in the weights.
        trusted: allow a full (code-executing) unpickle of a ``.pth`` whose origin you trust.
        overrides: further `IFCConfig` fields, e.g. ``categories``.
    """
    from ifc_sdk.checkpoint import load_checkpoint
    from ifc_sdk.weights import is_remote_source, load_pretrained_weights

    if not isinstance(source, IFC) and is_export_dir(source):
        return load_exported(source, device=device)
    device = resolve_device(device)
    if isinstance(source, IFC):
        model = source
    elif is_remote_source(source):
        model = load_pretrained_weights(str(source), **overrides)
        if isinstance(source, str) and "://" not in source:  # a manifest name: remember its settings
            setattr(model, RECOMMENDED_ATTRIBUTE, inference_defaults(source))
    else:
        model = load_checkpoint(source, preset=preset, trusted=trusted, **overrides)
    return model.to(device).eval()


class VideoStream:
    """Iterates a video's frames with their final instance masks as soon as they are known.

    Each item is a `FrameInstances` (frame index, timestamp, track ids and their RLE masks), released one window
    after it was read. Track class scores are final only once the stream is exhausted: call `result` then (or
    read `tracks`). A stream is iterated once; iterating it again raises `VideoError`.

    Stopping early (``break``, Ctrl-C, `close`) ends decoding cleanly; every frame yielded so far is final, and
    ``result(partial=True)`` returns them (class scores as known when it stopped). With ``keep_masks=False``
    nothing is kept, so memory stays flat on an endless source, and `result` is not available.

    A frame lost in a damaged video (`decode_report`) keeps its slot: it is yielded with no instances.
    """

    def __init__(
        self,
        segmenter: VideoSegmenter,
        frames: Iterator[FrameInstances],
        reader,
        progress,
        *,
        keep_masks: bool,
        missing: set[int],
        source: str | None,
    ) -> None:
        self.segmenter = segmenter
        self.source = source
        self.keep_masks = keep_masks
        self.finished = False
        self.num_frames = 0  # frames yielded so far
        self._frames = frames
        self._reader = reader
        self._progress = progress
        self._missing = missing
        self._started = False
        self._masks: dict[int, dict[int, RLE]] = {}  # track id -> frame -> RLE, with keep_masks
        self._timestamps: list[float | None] = []

    def __iter__(self) -> Iterator[FrameInstances]:
        if self._started:
            raise VideoError(
                self._name, f"expected one pass over the stream; it was iterated already ({self._state()})"
            )
        self._started = True
        return self._iterate()

    def _iterate(self) -> Iterator[FrameInstances]:
        try:
            for frame in self._frames:
                if frame.index in self._missing:  # a lost frame: the segmenter saw the previous one here
                    self._missing.discard(frame.index)
                    frame = self._without_instances(frame)
                if self.keep_masks:
                    self._timestamps.append(frame.timestamp)
                    for track_id, rle in zip(frame.track_ids, frame.masks):
                        self._masks.setdefault(track_id, {})[frame.index] = rle
                self.num_frames += 1
                if self._progress is not None:
                    self._progress.update(1)
                yield frame
            self.finished = True
        finally:
            self.close()

    def _without_instances(self, frame: FrameInstances) -> FrameInstances:
        return frame_instances(
            frame.index,
            [],
            [],
            self.segmenter.tracks,
            self.segmenter.model.config.categories,
            size=frame.size,
            timestamp=frame.timestamp,
            image=frame.image,
            provisional=frame.provisional,
        )

    def close(self) -> None:
        """Stop decoding and release the source (done for you at the end, on ``break`` and on errors)."""
        if self._progress is not None:
            self._progress.close()
        self._reader.close()

    @property
    def _name(self) -> str:
        return self.source or self._reader.path

    def _state(self) -> str:
        done = "to the end" if self.finished else "stopped early"
        return f"{self.num_frames} frame(s) read, {done}"

    @property
    def tracks(self) -> list[TrackSummary]:
        """Each track's id, label, class name and score so far (``provisional`` until the stream is exhausted)."""
        return track_summaries(
            self.segmenter.tracks, self.segmenter.model.config.categories, not self.finished
        )

    @property
    def decode_report(self):
        """What decoding found so far (`ifc_sdk.io.damage.DecodeReport`): frames lost, corrupt, expected."""
        return self._reader.report

    def result(self, *, partial: bool = False) -> VideoResult:
        """The `VideoResult` of the frames yielded: once the stream is exhausted, or after it stopped early
        with ``partial=True`` (only tracks with a mask in those frames, class scores as known then).

        Raises:
            VideoError: the stream is not exhausted (and ``partial`` is False), or masks were not kept.
        """
        if not self.keep_masks:
            raise VideoError(self._name, "expected a stream that keeps its masks; pass keep_masks=True")
        if not self.finished and not (partial and self._started):
            raise VideoError(
                self._name,
                f"expected an exhausted stream ({self._state() if self._started else 'not iterated yet'}); "
                "iterate it to the end, or call result(partial=True) after stopping",
            )
        n = self.num_frames
        size = self.segmenter.output_size
        categories = self.segmenter.model.config.categories
        tracks = [
            Track(t.id, t.class_probs, self._masks.get(t.id, {}), n, size, categories)
            for t in self.segmenter.tracks
            if self.finished or t.id in self._masks
        ]
        stamps = self._timestamps
        return VideoResult(
            tracks=tracks,
            num_frames=n,
            size=size,
            source=self.source,
            fps=self._reader.fps,
            timestamps=list(stamps) if stamps and all(t is not None for t in stamps) else None,
            categories=categories,
            decode_report=self._reader.report,
        )


def _load_for_inference(model: str | IFC, device) -> IFC:
    if isinstance(model, RuntimeClipModel):
        return model
    if isinstance(model, IFC):
        return model.to(resolve_device(device) if device is not None else model.device).eval()
    return load_model(model, device=device)


def segment_video(
    source: str | os.PathLike | int | Iterable,
    model: str | IFC = "r50",
    *,
    window: int | None = None,
    stride: int | None = None,
    size: int | None | Literal["auto"] = "auto",
    output_size: tuple[int, int] | None = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    mask_resize: str = "reference",
    progress: bool = True,
    stream: bool = False,
    keep_masks: bool | None = None,
    on_damage: str = "warn",
    timeout: float | None = DEFAULT_TIMEOUT,
    max_pixels: int | None = MAX_PIXELS,
    keep_frames: bool = False,
) -> VideoResult | VideoStream:
    """Segment and track every object instance in a video, a stream or frames.

    Frames are decoded (and resized to network size) in a background thread and pulled one window at a time;
    memory does not grow with the video's length.

    Damaged video: frame indices follow presentation timestamps. A frame lost to damage keeps its slot (the
    segmenter sees the previous good frame there and the slot gets no masks), so every later frame keeps its
    index and frame-indexed exports line up with the video. ``result.decode_report`` says what was expected,
    decoded, flagged corrupt by the decoder and missing; ``on_damage`` decides whether that warns (a
    `CorruptVideoWarning` naming the file), raises `VideoError` or passes silently.

    Args:
        source: a video file, a folder of frames, a glob (``"frames/*.jpg"``), a list of image paths, a uint8
            ``(T, H, W, 3)`` array or a list/iterator/generator of ``(H, W, 3)`` arrays or ``(3, H, W)``
            tensors, an ``http(s)://`` URL, a network stream (``rtsp://``, ``rtmp://``, ``tcp://``, ``udp://``,
            ``srt://``), a camera (index or ``/dev/videoN``) or ``"-"`` for stdin; see `ifc_sdk.io.sources`.
        model: a loaded `IFC` or a name/path for `load_model`.
        window: frames per window; default: the model's recommended setting (`inference_defaults`, 5 when it
            has none; the reference's SAMPLING_FRAME_NUM).
        stride: frames between window starts (1 <= stride <= window); default: the model's (1).
        size: short side frames are resized to; "auto" (default): the model's recommended size (360 when it
            has none); None keeps the source size.
        output_size: ``(height, width)`` of the masks; default the displayed size of the source.
        device: where the model runs (default: the model's device for a loaded model, else CUDA if available).
        precision: "fp32", "bf16" or "fp16" (autocast on the model's device).
        mask_resize: "reference" (default, the reference's masks) or "aligned" (without the reference's
            shift towards the top-left where the network input's side is not a multiple of 8; see
            `ifc_sdk.inference.predictor.VideoSegmenter`).
        progress: show a tqdm bar (frames, fps; without a total for sources of unknown length).
        stream: return a `VideoStream` that yields each frame's final masks as soon as they are known.
        keep_masks: with ``stream``, keep the masks for `VideoStream.result`; default: yes, except for live
            sources (network streams, cameras, stdin, iterators), whose memory must stay flat.
        on_damage: "warn" (default), "error" or "ignore" when frames are lost or decoded from corrupt data.
        timeout: seconds a URL, network stream or camera may take to open and between reads (default 10;
            None waits forever).
        max_pixels: largest frame accepted, in pixels (default 8192 x 8192; None for no limit).
        keep_frames: keep the decoded frames (``result.images``, or ``frame.image`` when streaming), so that
            `VideoResult.plot` and `VideoResult.save_overlay` draw on them without decoding the video again
            (they are kept at the source's size, so the segmenter, not the decoding thread, resizes them).

    Returns:
        A `VideoResult` (tracks, per-frame RLE masks, fps, timestamps, decode report), or a `VideoStream`.

    Raises:
        ConfigError: an argument is invalid (before any decoding).
        VideoError: the source cannot be opened or decoded (naming it), or is damaged with on_damage="error".
    """
    from ifc_sdk.io.sources import describe_source, open_source

    defaults = inference_defaults(model)
    window = defaults["window"] if window is None else window
    stride = defaults["stride"] if stride is None else stride
    size = defaults["size"] if isinstance(size, str) and size == "auto" else size
    window, stride = check_window(window, stride)
    if size is not None:
        size = positive_int(size, "size", "number of pixels (the short side), None or 'auto'")
    output_size = check_output_size(output_size)
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    check_policy(on_damage)
    info = describe_source(source)
    model = _load_for_inference(model, device)
    reader = open_source(
        source,
        prefetch=max(16, 2 * window),
        timeout=timeout,
        on_damage=on_damage,
        max_pixels=max_pixels,
    )
    try:
        if size is not None and not keep_frames:  # the decoding thread resizes: queued frames are small
            reader.resize = resized_shape(*reader.size, size, MAX_SIZE)
        segmenter = VideoSegmenter(
            model,
            window=window,
            stride=stride,
            size=size if reader.resize is None else None,
            max_size=MAX_SIZE,
            output_size=output_size or reader.size,
            precision=precision,
            keep_images=keep_frames,
            source=reader.path,
            mask_resize=mask_resize,
        )
    except BaseException:
        reader.close()
        raise
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=reader.num_frames_hint, unit="frame", desc=info.stem, dynamic_ncols=True)
    missing: set[int] = set()

    def inputs():
        for frame in reader:
            if frame.missing:
                missing.add(frame.index)
            yield frame.image, frame.timestamp

    keep = (not reader.live) if keep_masks is None else bool(keep_masks)
    video = VideoStream(
        segmenter,
        segmenter.run(inputs()),
        reader,
        bar,
        keep_masks=keep or not stream,
        missing=missing,
        source=None if info.kind in ("array", "iterator") else reader.path,
    )
    if stream:
        return video
    kept = FrameKeeper(video) if keep_frames else None
    for _ in video if kept is None else kept:
        pass
    result = video.result()
    result.images = None if kept is None else kept.images
    return result
