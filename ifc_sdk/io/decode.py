"""FFmpeg (PyAV) decoding of video files, URLs, network streams, cameras and stdin.

`AVSource.open` checks the input up front (it opens, is a video with a video stream whose first frame decodes)
and raises `VideoError` naming it. Frames are converted to RGB in displayed orientation: the display matrix of
the container (rotation and mirroring, as written by phones) is applied, as ``ffmpeg`` does. Frame indices
follow presentation timestamps (`ifc_sdk.io.damage.Timeline`); lost frames come out as ``missing`` frames.

Frame counts in container headers are only a hint (Matroska, WebM and some AVI files have none, others lie).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ifc_sdk.errors import VideoError
from ifc_sdk.io.damage import DecodeReport, Timeline
from ifc_sdk.io.reader import Frame, check_pixels

_TEXT_SNIFF_BYTES = 4096
_FRAME_THREADS_MAX_PIXELS = 3840 * 2160

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


def _is_attached_picture(stream) -> bool:
    try:
        return bool(int(stream.disposition) & int(av.stream.Disposition.attached_pic))
    except (AttributeError, TypeError, ValueError):  # pragma: no cover
        return False


def _describe_streams(container) -> str:
    kinds: dict[str, int] = {}
    for stream in container.streams:
        kind = "cover image" if stream.type == "video" and _is_attached_picture(stream) else stream.type
        kinds[kind] = kinds.get(kind, 0) + 1
    if not kinds:
        return "no streams at all"
    return ", ".join(f"{n} {kind} stream{'s' if n > 1 else ''}" for kind, n in kinds.items())


def _pick_video_stream(container):
    return next((s for s in container.streams.video if not _is_attached_picture(s)), None)


@dataclass(frozen=True)
class AVInput:
    """How FFmpeg opens a source: ``url`` (path, URL, device) with an optional input ``format``."""

    name: str  # shown in messages and results
    url: str
    kind: str  # "file", "url" (http/https), "stream" (rtsp, tcp, ...), "camera", "pipe"
    format: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None  # seconds to open and between reads (network sources and cameras)

    @property
    def restartable(self) -> bool:
        return self.kind in ("file", "url")


@dataclass
class _Pass:
    """One open container, decoding from its start."""

    container: object
    stream: object
    timeline: Timeline
    report: DecodeReport
    decoded: Iterator[tuple[av.VideoFrame, bool]] | None = None
    first: tuple[av.VideoFrame, bool] | None = None
    last_error: Exception | None = None  # the decoder's last refusal


class AVSource:
    """A `FrameSource` decoded by FFmpeg; open with `AVSource.open`."""

    def __init__(self, spec: AVInput, opened: _Pass, max_pixels: int | None) -> None:
        self.spec = spec
        self.name = spec.name
        self.restartable = spec.restartable
        self._max_pixels = max_pixels
        frame = opened.first[0]
        self._orientation = _orientation_from_display_matrix(_frame_display_matrix(frame))
        self._width, self._height = int(frame.width), int(frame.height)
        self.size = (self._width, self._height) if self._orientation[0] else (self._height, self._width)
        rate = opened.stream.average_rate or opened.stream.guessed_rate
        self.fps = float(rate) if rate else None
        self.num_frames_hint = int(opened.stream.frames) if opened.stream.frames else None
        self._opened: _Pass | None = opened
        self._lock = threading.Lock()

    @classmethod
    def open(cls, spec: AVInput, *, max_pixels: int | None) -> AVSource:
        """Open ``spec`` and decode its first frame; `VideoError` naming it when that fails."""
        return cls(spec, _open_pass(spec, DecodeReport(spec.name), max_pixels), max_pixels)

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, None
        if opened is not None:
            opened.container.close()

    def frames(self, stop: threading.Event, report: DecodeReport) -> Iterator[Frame]:
        with self._lock:
            p, self._opened = self._opened, None
        if p is None:
            if not self.restartable:
                raise VideoError(self.name, "expected a first pass: a live source can be read only once")
            p = _open_pass(self.spec, report, self._max_pixels)
        else:  # the pass opened (and probed) by `open`: keep what the probe counted
            report.decode_errors += p.report.decode_errors
            p.report = report
        try:
            yield from self._frames(p, stop)
        finally:
            p.container.close()

    def _frames(self, p: _Pass, stop: threading.Event) -> Iterator[Frame]:
        report, time_base = p.report, p.stream.time_base
        previous: np.ndarray | None = None
        for frame, corrupt in _chain(p.first, p.decoded):
            placed = p.timeline.place(frame.pts)
            if placed is None:  # not after the previous frame: its slot is taken
                continue
            missing, index = placed
            image = _apply_orientation(_to_rgb(frame, self._width, self._height), self._orientation)
            report.frames_decoded += 1
            report.frames_corrupt += corrupt
            for slot, pts in missing:
                report.missing.append(slot)
                stamp = None if time_base is None else float(pts * time_base)
                yield Frame(slot, image if previous is None else previous, stamp, missing=True)
            yield Frame(index, image, frame.time, corrupt=corrupt)
            previous = image
            if stop.is_set():
                return
        expected = self.num_frames_hint
        if expected is None and p.timeline.constant_rate and len(p.container.streams) == 1 and self.fps:
            duration = p.container.duration  # microseconds; one stream, so it is the video's
            expected = round(duration / 1e6 * self.fps) if duration else None
        report.frames_expected = expected
        behind = expected - p.timeline.num_slots if expected is not None else 0
        report.missing_at_end = max(behind, p.timeline.pending())


def _chain(first, rest) -> Iterator:
    yield first
    yield from rest


def _tick(stream) -> int | None:
    """Nominal frame duration in time-base ticks, from the average (or guessed) frame rate."""
    rate = stream.average_rate or stream.guessed_rate
    if not rate or not stream.time_base:
        return None
    return round(1 / (Fraction(rate) * Fraction(stream.time_base)))


def _decode(p: _Pass) -> Iterator[tuple[av.VideoFrame, bool]]:
    """``(frame, corrupt)`` in presentation order. A packet the decoder rejects is counted and skipped (its
    slot stays missing); a read error ends the pass, recorded in the report."""
    packets = p.container.demux(p.stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except (av.FFmpegError, OSError) as e:
            p.report.stopped_by = f"{type(e).__name__}: {e}"
            return
        if packet.size:
            p.timeline.expect(packet.pts)
        try:
            frames = packet.decode()
        except av.FFmpegError as e:
            p.report.decode_errors += 1
            p.last_error = e
            continue
        for frame in frames:
            yield frame, bool(packet.is_corrupt) or bool(frame.is_corrupt)


def _open_pass(spec: AVInput, report: DecodeReport, max_pixels: int | None) -> _Pass:
    container = _open_container(spec)
    try:
        stream = _pick_video_stream(container)
        if stream is None:
            raise VideoError(spec.name, f"expected a video stream; found {_describe_streams(container)}")
        ctx = stream.codec_context
        if ctx is not None and ctx.width and ctx.height:
            check_pixels(spec.name, ctx.height, ctx.width, max_pixels)
        # Frame threading holds a frame per thread: above 4K UHD that is ~100 MB each, so use slices there.
        large = ctx is not None and ctx.width * ctx.height > _FRAME_THREADS_MAX_PIXELS
        stream.thread_type = "SLICE" if large else "AUTO"
        p = _Pass(container, stream, Timeline(_tick(stream)), report)
        p.decoded = _decode(p)
        try:
            p.first = next(p.decoded, None)
        except Exception as e:  # e.g. a conversion failure inside FFmpeg
            raise VideoError(spec.name, f"expected a decodable first frame; {type(e).__name__}: {e}") from e
        if p.first is None:
            codec = ctx.name if ctx is not None else "unknown codec"
            why = f" ({report.decode_errors} packet(s) rejected)" if report.decode_errors else ""
            why += f"; reading stopped: {report.stopped_by}" if report.stopped_by else ""
            raise VideoError(
                spec.name,
                f"expected a decodable first frame in the {codec} stream; none could be decoded{why}",
            ) from p.last_error
        check_pixels(spec.name, p.first[0].height, p.first[0].width, max_pixels)
        return p
    except BaseException:
        container.close()
        raise


def _open_container(spec: AVInput):
    kwargs = {"metadata_errors": "ignore"}
    if spec.format:
        kwargs["format"] = spec.format
    if spec.options:
        kwargs["options"] = dict(spec.options)
    if spec.timeout is not None:
        kwargs["timeout"] = spec.timeout
    try:
        return av.open(spec.url, **kwargs)
    except Exception as e:
        raise VideoError(spec.name, _open_failure(spec, e)) from e


def _open_failure(spec: AVInput, e: Exception) -> str:
    """What failed when FFmpeg could not open ``spec``, in words."""
    cause = f"{type(e).__name__}: {e}"
    if spec.kind == "file":
        path = Path(spec.url)
        size = path.stat().st_size if path.is_file() else 0
        found = "a text file" if _looks_like_text(path) else f"{size} bytes FFmpeg cannot parse"
        return f"expected a video container (mp4, mkv, webm, avi, ...); found {found} ({e})"
    if isinstance(e, av.error.ExitError | TimeoutError):
        what = {"url": "server", "stream": "stream", "camera": "camera"}.get(spec.kind, spec.kind)
        return f"expected the {what} to answer within {spec.timeout:g} s (the timeout argument); it did not"
    if spec.kind == "camera":
        via = f" via {spec.format}" if spec.format else ""
        return f"expected a camera at {spec.url!r}{via}; it cannot be opened ({cause})"
    if spec.kind == "pipe":
        return f"expected a video container on stdin; FFmpeg cannot read it ({cause})"
    what = "a video at this URL" if spec.kind == "url" else "a video stream FFmpeg can read"
    return f"expected {what}; it cannot be opened ({cause})"
