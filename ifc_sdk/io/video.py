"""Read a video file or a folder of frame images as RGB frames, decoded ahead in a background thread.

``open_video`` checks its input up front (path exists, is a video with a video stream whose first frame
decodes, or a folder holding frame images) and raises `VideoError` naming the file before any work starts.
Iterating the returned `VideoReader` yields `Frame`s in display order and orientation: the display matrix of
the container (rotation and mirroring, as written by phones) is applied, so ``reader.size`` and every frame
match what a player shows.

Frame counts in container headers are only a hint (Matroska, WebM and some AVI files have none, others lie);
the frames actually decoded are counted in ``num_frames_decoded``.
"""

from __future__ import annotations

import os
import queue
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageOps

from ifc_sdk.errors import ConfigError, VideoError

__all__ = [
    "IMAGE_EXTENSIONS",
    "CorruptVideoWarning",
    "Frame",
    "VideoReader",
    "iter_batches",
    "open_video",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
_TEXT_SNIFF_BYTES = 4096
_PUT_POLL_S = 0.05
_JOIN_TIMEOUT_S = 5.0


class CorruptVideoWarning(UserWarning):
    """Some frames of a video were decoded from corrupt data (FFmpeg concealed the errors)."""


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame.

    Attributes:
        index: 0-based position in display order.
        image: uint8 ``(H, W, 3)`` RGB, C-contiguous, in displayed orientation.
        timestamp: presentation time in seconds (``pts * time_base``), None when unknown (frame folders).
    """

    index: int
    image: np.ndarray
    timestamp: float | None


# An orientation is (transpose, flip_rows, flip_cols), applied in that order to an (H, W, C) array.
_Orientation = tuple[bool, bool, bool]
_IDENTITY: _Orientation = (False, False, False)


def _orientation_from_display_matrix(matrix: np.ndarray | None) -> _Orientation:
    """How to turn a decoded image into the displayed one, from FFmpeg's 3x3 display matrix (int32, 16.16).

    FFmpeg maps a source pixel ``(x, y)`` to ``(a*x + c*y, b*x + d*y)`` with ``a, b, c, d = m[0], m[1], m[3],
    m[4]`` (y pointing down); for the axis-aligned matrices that videos carry this is a transpose and/or flips.
    This reproduces ``ffmpeg``'s autorotate for all eight orientations (90 deg counter-clockwise is
    ``np.rot90(img, 1)``). Arbitrary angles are rounded to the nearest multiple of 90 degrees.
    """
    if matrix is None:
        return _IDENTITY
    a, b, c, d = (float(v) for v in matrix[[0, 1, 3, 4]])
    if abs(a) + abs(d) >= abs(b) + abs(c):  # no axis swap: x' ~ a*x, y' ~ d*y
        return (False, d < 0, a < 0)
    # axis swap: the output row follows x (sign b), the output column follows y (sign c)
    return (True, b < 0, c < 0)


def _apply_orientation(image: np.ndarray, orientation: _Orientation) -> np.ndarray:
    transpose, flip_rows, flip_cols = orientation
    if transpose:
        image = image.transpose(1, 0, 2)
    if flip_rows:
        image = image[::-1]
    if flip_cols:
        image = image[:, ::-1]
    return np.ascontiguousarray(image)


def _frame_display_matrix(frame: av.VideoFrame) -> np.ndarray | None:
    """The DISPLAYMATRIX side data of a decoded frame (FFmpeg copies the container's matrix onto frames)."""
    try:
        side = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
    except (AttributeError, KeyError, ValueError):  # pragma: no cover - older PyAV
        side = None
    if side is not None:
        data = bytes(side)
        if len(data) >= 36:
            return np.frombuffer(data[:36], dtype="<i4")
    rotation = getattr(frame, "rotation", 0) or 0  # pragma: no cover - fallback when side data is hidden
    if rotation:  # pragma: no cover
        theta = np.deg2rad(rotation)
        cos, sin = round(np.cos(theta)), round(np.sin(theta))
        return np.array([cos, -sin, 0, sin, cos, 0, 0, 0, 1], dtype=np.int64) * 65536
    return None


def _to_rgb(frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
    """Convert any pixel format (8/10-bit, 4:2:0/4:4:4, gray, odd sizes) to uint8 RGB at a fixed size."""
    kwargs = {}
    if frame.color_range == 2:  # AVCOL_RANGE_JPEG: full-range YUV, which swscale would treat as limited
        kwargs["src_color_range"] = 2
    return frame.to_ndarray(format="rgb24", width=width, height=height, **kwargs)


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _looks_like_text(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(_TEXT_SNIFF_BYTES)
    except OSError:
        return False
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start > len(head) - 4  # cut in the middle of a multi-byte character
    return True


def _describe_streams(container: av.container.InputContainer) -> str:
    kinds: dict[str, int] = {}
    for stream in container.streams:
        kind = stream.type
        if kind == "video" and _is_attached_picture(stream):
            kind = "cover image"
        kinds[kind] = kinds.get(kind, 0) + 1
    if not kinds:
        return "no streams at all"
    return ", ".join(f"{n} {kind} stream{'s' if n > 1 else ''}" for kind, n in kinds.items())


def _is_attached_picture(stream) -> bool:
    try:
        return bool(int(stream.disposition) & int(av.stream.Disposition.attached_pic))
    except (AttributeError, TypeError, ValueError):  # pragma: no cover
        return False


def _pick_video_stream(container: av.container.InputContainer):
    for stream in container.streams.video:
        if not _is_attached_picture(stream):
            return stream
    return None


def _iter_decoded(container, stream) -> Iterator[tuple[av.VideoFrame, bool]]:
    """Yield ``(frame, corrupt)``; demuxing by hand exposes ``packet.is_corrupt`` as well."""
    for packet in container.demux(stream):
        packet_corrupt = bool(packet.is_corrupt)
        for frame in packet.decode():
            yield frame, packet_corrupt or bool(frame.is_corrupt)


# ---------------------------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class _FileSource:
    path: str
    width: int  # coded size of the first frame; later frames are scaled to it if the stream changes size
    height: int
    orientation: _Orientation

    def frames(self, stop: threading.Event) -> Iterator[tuple[np.ndarray, float | None, bool]]:
        container = av.open(self.path, metadata_errors="ignore")
        try:
            stream = _pick_video_stream(container)
            stream.thread_type = "AUTO"
            for frame, corrupt in _iter_decoded(container, stream):
                image = _apply_orientation(_to_rgb(frame, self.width, self.height), self.orientation)
                yield image, frame.time, corrupt
                if stop.is_set():
                    return
        finally:
            container.close()


@dataclass(frozen=True)
class _FolderSource:
    path: str
    files: tuple[Path, ...]
    size: tuple[int, int]

    def frames(self, stop: threading.Event) -> Iterator[tuple[np.ndarray, float | None, bool]]:
        for file in self.files:
            image = _read_image(file)
            if image.shape[:2] != self.size:
                raise VideoError(
                    file,
                    f"expected a frame of {self.size[1]}x{self.size[0]} like the first frame of the folder; "
                    f"found {image.shape[1]}x{image.shape[0]}",
                )
            yield image, None, False
            if stop.is_set():
                return


def _read_image(file: Path) -> np.ndarray:
    try:
        with Image.open(file) as img:
            img = ImageOps.exif_transpose(img)
            return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise VideoError(file, f"expected a JPEG/PNG frame image; it cannot be decoded: {e}") from e


# ---------------------------------------------------------------------------------------------- reader
class _End:
    pass


_END = _End()


@dataclass(frozen=True)
class _Failure:
    error: BaseException


class VideoReader:
    """Iterable over the `Frame`s of one video file or frame folder; create it with `open_video`.

    Every iteration decodes from the start in a background thread, at most ``prefetch`` frames ahead of the
    consumer. Use it as a context manager (or call `close`) to stop the thread early.

    Attributes:
        path: the video file or frame folder.
        fps: average frame rate, None when unknown (frame folders, streams without timing).
        size: ``(height, width)`` of the frames as displayed (after rotation metadata).
        num_frames_hint: frame count from the container header, None when absent; never trusted.
        num_frames_decoded: frames yielded so far by the current (or last) iteration.
        num_corrupt: frames of the current (or last) iteration decoded from corrupt data.
    """

    def __init__(
        self,
        path: str,
        *,
        fps: float | None,
        size: tuple[int, int],
        num_frames_hint: int | None,
        prefetch: int,
        source: _FileSource | _FolderSource,
    ) -> None:
        self.path = path
        self.fps = fps
        self.size = size
        self.num_frames_hint = num_frames_hint
        self.num_frames_decoded = 0
        self.num_corrupt = 0
        self._prefetch = prefetch
        self._source = source
        self._warned_corrupt = False
        self._closed = False
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self._queue: queue.Queue | None = None

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
            self._stop_thread()
        except Exception:
            pass

    def close(self) -> None:
        """Stop the decoding thread (promptly: it checks between frames) and release the file."""
        self._closed = True
        self._stop_thread()

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
        self._stop_thread()  # one iteration at a time: a new one restarts from the first frame
        stop = threading.Event()
        q: queue.Queue = queue.Queue(maxsize=self._prefetch)
        thread = threading.Thread(
            target=_produce,
            args=(self._source.frames, stop, q),
            name=f"ifc-video-decode:{os.path.basename(self.path)}",
            daemon=True,
        )
        self._stop, self._thread, self._queue = stop, thread, q
        self.num_frames_decoded = 0
        self.num_corrupt = 0
        thread.start()
        return self._consume(stop, thread, q)

    def _consume(self, stop: threading.Event, thread: threading.Thread, q: queue.Queue) -> Iterator[Frame]:
        index = 0
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
                    return
                if isinstance(item, _Failure):
                    err = item.error
                    if isinstance(err, VideoError):
                        raise err
                    raise VideoError(
                        self.path,
                        f"expected frame {index} to decode; found a truncated or corrupt stream after {index} "
                        f"good frame(s) ({type(err).__name__}: {err})",
                    ) from err
                image, timestamp, corrupt = item
                if corrupt:
                    self.num_corrupt += 1
                    if not self._warned_corrupt:
                        self._warned_corrupt = True
                        warnings.warn(
                            f"{self.path}: frame {index} was decoded from corrupt data (errors concealed by "
                            "FFmpeg); further corrupt frames are counted in VideoReader.num_corrupt",
                            CorruptVideoWarning,
                            stacklevel=2,
                        )
                self.num_frames_decoded = index + 1
                yield Frame(index, image, timestamp)
                index += 1
        finally:
            if self._thread is thread:
                self._stop_thread()


def _drain(q: queue.Queue) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


def _produce(
    frames: Callable[[threading.Event], Iterator[tuple[np.ndarray, float | None, bool]]],
    stop: threading.Event,
    q: queue.Queue,
) -> None:
    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=_PUT_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    try:
        for item in frames(stop):
            if not put(item):
                return
        put(_END)
    except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
        put(_Failure(e))


# ---------------------------------------------------------------------------------------------- opening
def open_video(source: str | os.PathLike, *, prefetch: int = 16) -> VideoReader:
    """Open a video file or a folder of frame images (JPEG/PNG, ordered by name, numbers compared as numbers).

    Raises:
        VideoError: the path is missing, an empty file, not a video, has no video stream, its first frame
            cannot be decoded, or a folder holds no frame images.
        ConfigError: ``prefetch`` is not a positive integer.
    """
    if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
        raise ConfigError(f"prefetch: expected a positive integer (frames decoded ahead), got {prefetch!r}")
    path = Path(source)
    name = os.fspath(source)
    if not path.exists():
        raise VideoError(
            name, "expected a video file or a folder of frame images; nothing exists at this path"
        )
    if path.is_dir():
        return _open_folder(name, path, prefetch)
    if not path.is_file():
        raise VideoError(name, "expected a video file or a folder of frame images; found a special file")
    return _open_file(name, path, prefetch)


def _open_folder(name: str, path: Path, prefetch: int) -> VideoReader:
    files = tuple(
        sorted(
            (p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
            key=lambda p: _natural_key(p.name),
        )
    )
    if not files:
        entries = sum(1 for _ in path.iterdir())
        found = (
            "an empty folder"
            if entries == 0
            else f"{entries} entries, none named *{'/*'.join(IMAGE_EXTENSIONS)}"
        )
        raise VideoError(name, f"expected a folder of frame images (JPEG/PNG); found {found}")
    first = _read_image(files[0])
    size = (int(first.shape[0]), int(first.shape[1]))
    return VideoReader(
        name,
        fps=None,
        size=size,
        num_frames_hint=len(files),
        prefetch=prefetch,
        source=_FolderSource(name, files, size),
    )


def _open_file(name: str, path: Path, prefetch: int) -> VideoReader:
    nbytes = path.stat().st_size
    if nbytes == 0:
        raise VideoError(name, "expected a video file; found an empty file (0 bytes)")
    try:
        container = av.open(os.fspath(path), metadata_errors="ignore")
    except Exception as e:
        found = "a text file" if _looks_like_text(path) else f"{nbytes} bytes FFmpeg cannot parse"
        raise VideoError(
            name, f"expected a video container (mp4, mkv, webm, avi, ...); found {found} ({e})"
        ) from e
    with container:
        stream = _pick_video_stream(container)
        if stream is None:
            raise VideoError(name, f"expected a video stream; found {_describe_streams(container)}")
        codec = stream.codec_context.name if stream.codec_context is not None else "unknown codec"
        try:
            frame = next((f for f, _ in _iter_decoded(container, stream)), None)
        except Exception as e:
            raise VideoError(
                name, f"expected a decodable first frame ({codec}); decoding failed: {type(e).__name__}: {e}"
            ) from e
        if frame is None:
            raise VideoError(
                name, f"expected at least one frame in the {codec} stream; none could be decoded"
            )
        orientation = _orientation_from_display_matrix(_frame_display_matrix(frame))
        width, height = int(frame.width), int(frame.height)
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        hint = int(stream.frames) if stream.frames else None
    size = (width, height) if orientation[0] else (height, width)
    return VideoReader(
        name,
        fps=fps,
        size=size,
        num_frames_hint=hint,
        prefetch=prefetch,
        source=_FileSource(name, width, height, orientation),
    )


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
