"""The decoding thread: `VideoReader` pulls `Frame`s from a `FrameSource` in the background.

A source (`ifc_sdk.io.decode`, `ifc_sdk.io.images`) yields frames in order; the reader runs it in a thread at
most ``prefetch`` frames ahead of the consumer and can resize each frame there to network size (PIL's bilinear
filter, as `ifc_sdk.inference.preprocess.resize_frames` does on the CPU), so the frames waiting in the queue are
small whatever the source's resolution. `ifc_sdk.io.sources.open_source` builds readers.

Damaged video (`ifc_sdk.io.damage`): frame indices follow presentation timestamps; a lost frame keeps its slot
as a `Frame` with ``missing=True`` carrying the previous good image, and the reader's `DecodeReport` says what
was lost. ``on_damage`` decides what happens then: ``"warn"`` (one `CorruptVideoWarning` naming the file),
``"error"`` (`VideoError` at the first damage) or ``"ignore"``.
"""

from __future__ import annotations

import os
import queue
import threading
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from ifc_sdk.errors import ConfigError, VideoError
from ifc_sdk.inference.preprocess import resize_frames
from ifc_sdk.io.damage import DAMAGE_POLICIES, DecodeReport

__all__ = [
    "DEFAULT_TIMEOUT",
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "CorruptVideoWarning",
    "Frame",
    "FrameSource",
    "VideoReader",
    "check_pixels",
    "check_policy",
    "iter_batches",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
MAX_PIXELS = 8192 * 8192  # frames above this many pixels are refused unless ``max_pixels`` says otherwise
DEFAULT_TIMEOUT = 10.0  # seconds a URL, network stream or camera may take to open and between reads
_PUT_POLL_S = 0.05
_JOIN_TIMEOUT_S = 5.0


class CorruptVideoWarning(UserWarning):
    """A video is damaged: frames were lost or decoded from corrupt data (see `VideoReader.report`)."""


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame.

    Attributes:
        index: 0-based slot in display order (a lost frame keeps its slot, see ``missing``).
        image: uint8 ``(H, W, 3)`` RGB, C-contiguous, in displayed orientation (resized when the reader was
            asked to).
        timestamp: presentation time in seconds (``pts * time_base``), None when unknown (images, arrays).
        missing: the frame was lost; ``image`` repeats the previous good frame so windows keep their timing.
        corrupt: the decoder flagged the frame as decoded from corrupt data (errors concealed).
    """

    index: int
    image: np.ndarray
    timestamp: float | None
    missing: bool = False
    corrupt: bool = False


class FrameSource(Protocol):
    """What `VideoReader` decodes from: one video file, stream, camera, image list or array sequence."""

    name: str
    size: tuple[int, int]  # (height, width) as displayed
    fps: float | None
    num_frames_hint: int | None
    restartable: bool  # False for live streams, pipes, cameras and iterators: one pass only

    def frames(self, stop: threading.Event, report: DecodeReport) -> Iterator[Frame]:
        """Frames in order; fills ``report``; returns promptly once ``stop`` is set."""

    def close(self) -> None:
        """Release what opening took (a container kept open for the first pass)."""


def check_pixels(name: str, height: int, width: int, max_pixels: int | None) -> None:
    """Refuse frames above ``max_pixels`` before they are decoded (each costs 3 bytes per pixel)."""
    if max_pixels is not None and height * width > max_pixels:
        raise VideoError(
            name,
            f"expected frames of at most {max_pixels:,} pixels; found {width}x{height} "
            f"({height * width / 1e6:.1f} MP). Pass max_pixels=None (or a larger limit) to decode them anyway",
        )


def check_policy(on_damage: str) -> None:
    """`ConfigError` unless ``on_damage`` is one of `DAMAGE_POLICIES`."""
    if on_damage not in DAMAGE_POLICIES:
        raise ConfigError(f"on_damage must be one of {list(DAMAGE_POLICIES)}, got {on_damage!r}")


class _End:
    pass


_END = _End()


@dataclass(frozen=True)
class _Failure:
    error: BaseException


class VideoReader:
    """Iterable over the `Frame`s of one source; create it with `ifc_sdk.io.sources.open_source`.

    An iteration decodes in a background thread, at most ``prefetch`` frames ahead of the consumer. Files,
    folders, globs, path lists and arrays can be iterated again (from the first frame); live streams, pipes,
    cameras and iterators only once. Use it as a context manager (or call `close`) to stop the thread early.

    Attributes:
        path: the source's name: its path or URL, ``"<stdin>"``, ``"camera 0"``, ``"<array>"``, ...
        fps: average frame rate, None when unknown (images, arrays).
        size: ``(height, width)`` of the frames as displayed (after rotation metadata).
        num_frames_hint: frame count from the container header (or the number of images), None when absent;
            never trusted.
        num_frames_decoded: frames yielded so far by the current (or last) iteration, missing slots included.
        report: the `DecodeReport` of the current (or last) iteration.
        resize: ``(height, width)`` the decoding thread resizes frames to, or None to keep them as decoded.
        on_damage: ``"warn"``, ``"error"`` or ``"ignore"`` (see the module docstring).
        live: one pass only (`restartable` is False).
    """

    def __init__(
        self,
        source: FrameSource,
        *,
        prefetch: int = 16,
        on_damage: str = "warn",
        max_pixels: int | None = MAX_PIXELS,
    ) -> None:
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
            raise ConfigError(
                f"prefetch: expected a positive integer (frames decoded ahead), got {prefetch!r}"
            )
        check_policy(on_damage)
        self._source = source
        self.path = source.name
        self.fps = source.fps
        self.size = source.size
        self.num_frames_hint = source.num_frames_hint
        self.live = not source.restartable
        check_pixels(self.path, *self.size, max_pixels)
        self.on_damage = on_damage
        self.resize: tuple[int, int] | None = None
        self.num_frames_decoded = 0
        self.report = DecodeReport(self.path)
        self._prefetch = prefetch
        self._closed = False
        self._passes = 0
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self._queue: queue.Queue | None = None

    @property
    def num_corrupt(self) -> int:
        """Frames of the current (or last) iteration decoded from corrupt data."""
        return self.report.frames_corrupt

    def __repr__(self) -> str:
        h, w = self.size
        return f"VideoReader({self.path!r}, size={w}x{h}, fps={self.fps}, num_frames_hint={self.num_frames_hint})"

    # -- lifecycle
    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort when the reader is dropped mid-iteration
        try:
            self.close()
        except Exception:
            pass

    def close(self) -> None:
        """Stop the decoding thread (promptly: it checks between frames) and release the source."""
        self._closed = True
        self._stop_thread()
        self._source.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _stop_thread(self) -> None:
        stop, thread, q = self._stop, self._thread, self._queue
        if stop is None:
            return
        stop.set()
        if q is not None:  # unblock a producer waiting on a full queue
            _drain(q)
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_TIMEOUT_S)
        if q is not None:
            _drain(q)
        self._stop = self._thread = self._queue = None

    # -- iteration
    def __iter__(self) -> Iterator[Frame]:
        if self._closed:
            raise VideoError(self.path, "expected an open reader; this one was closed")
        if self.live and self._passes:
            raise VideoError(
                self.path,
                "expected a first pass: a live stream, pipe, camera or iterator can be read only once",
            )
        self._stop_thread()  # one iteration at a time: a new one restarts from the first frame
        self._passes += 1
        stop = threading.Event()
        q: queue.Queue = queue.Queue(maxsize=self._prefetch)
        report = DecodeReport(self.path)
        thread = threading.Thread(
            target=_produce,
            args=(self._source, self.resize, stop, q, report),
            name=f"ifc-video-decode:{os.path.basename(self.path)}",
            daemon=True,
        )
        self._stop, self._thread, self._queue = stop, thread, q
        self.report = report
        self.num_frames_decoded = 0
        thread.start()
        return self._consume(stop, thread, q, report)

    def _consume(
        self, stop: threading.Event, thread: threading.Thread, q: queue.Queue, report: DecodeReport
    ) -> Iterator[Frame]:
        finished = False
        try:
            while True:
                try:
                    item = q.get(timeout=0.5)
                except queue.Empty:
                    if stop.is_set():
                        return
                    if not thread.is_alive() and q.empty():  # pragma: no cover - producer always reports
                        raise VideoError(self.path, "decoding thread ended without reporting") from None
                    continue
                if item is _END:
                    finished = True
                    return
                if isinstance(item, _Failure):
                    err = item.error
                    if isinstance(err, VideoError | ConfigError):
                        raise err
                    raise VideoError(
                        self.path,
                        f"expected frame {self.num_frames_decoded} to decode; decoding failed after "
                        f"{self.num_frames_decoded} frame(s) ({type(err).__name__}: {err})",
                    ) from err
                if (item.missing or item.corrupt) and self.on_damage == "error":
                    what = "is missing" if item.missing else "was decoded from corrupt data"
                    raise VideoError(
                        self.path, f"damaged video: frame {item.index} {what} (on_damage='error')"
                    )
                self.num_frames_decoded = item.index + 1
                yield item
        finally:
            if self._thread is thread:
                self._stop_thread()
            self._report_damage(report, finished)

    def _report_damage(self, report: DecodeReport, finished: bool) -> None:
        """At the end of a pass (or when it stops early): raise or warn once about what was lost."""
        if not report.damaged or self.on_damage == "ignore":
            return
        text = f"damaged video: {report.summary()}"
        if self.on_damage == "error":
            if finished:  # damage only known at the end (truncation); frame-level damage raised already
                raise VideoError(self.path, f"{text} (on_damage='error')")
            return
        if not finished:
            text += " (before reading stopped)"
        warnings.warn(
            f"{self.path}: {text}. Frame indices follow timestamps: a lost frame keeps its slot, without masks",
            CorruptVideoWarning,
            stacklevel=3,
        )


def _drain(q: queue.Queue) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The segmenter's CPU resize (PIL bilinear), applied to one frame in the decoding thread."""
    with warnings.catch_warnings():  # decoded images may be read-only; the tensor is only read
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        x = torch.from_numpy(image).permute(2, 0, 1)[None]  # (1, 3, H, W) uint8
    return np.ascontiguousarray(resize_frames(x, size)[0].permute(1, 2, 0).numpy())


def _produce(
    source: FrameSource,
    resize: tuple[int, int] | None,
    stop: threading.Event,
    q: queue.Queue,
    report: DecodeReport,
) -> None:
    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=_PUT_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    last: tuple[np.ndarray, np.ndarray] | None = None  # (decoded, resized) of the previous frame
    try:
        for frame in source.frames(stop, report):
            if resize is not None and frame.image.shape[:2] != resize:
                if last is None or last[0] is not frame.image:  # missing slots repeat the previous image
                    last = (frame.image, _resize(frame.image, resize))
                frame = Frame(frame.index, last[1], frame.timestamp, frame.missing, frame.corrupt)
            if not put(frame):
                return
        put(_END)
    except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
        put(_Failure(e))


def iter_batches(reader: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    """Group consecutive frames into lists of ``size`` (the last one may be shorter)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"size: expected a positive integer batch size, got {size!r}")
    batch: list[Frame] = []
    for frame in reader:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
