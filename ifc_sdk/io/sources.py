"""One ``source`` argument for every place video comes from: `open_source` resolves it to a `VideoReader`.

Read any number of times (each pass starts at the first frame):

- ``"clip.mp4"``: a video file FFmpeg decodes; ``"http(s)://..."``: one over HTTP;
- ``"frames/"``: a folder of JPEG/PNG frames ordered by name (digit runs compared as numbers);
- ``"frames/*.jpg"`` or ``["a.png", "b.png"]``: a glob (natural order) or a list of image files (given order);
- a uint8 ``(T, H, W, 3)`` array (a tensor may be ``(T, 3, H, W)``) or a list of ``(H, W, 3)`` arrays /
  ``(3, H, W)`` tensors.

Read once, of unknown length (``num_frames_hint`` None, ``live``):

- ``"rtsp://"``, ``"rtmp://"``, ``"tcp://"``, ``"udp://"``, ``"srt://"``: a network stream as FFmpeg reads it;
- ``0`` / ``"0"`` / ``"/dev/video0"``: a camera, through v4l2 (Linux), avfoundation (macOS) or dshow (Windows,
  where ``"video=NAME"`` is accepted too); see `camera_input`;
- ``"-"``: a video container piped on stdin; an iterator or generator of frames.

Opening a URL, stream or camera waits at most ``timeout`` seconds (also between reads); every failure is a
`VideoError` naming the source, and what no source can be is a `ConfigError`.
"""

from __future__ import annotations

import glob
import os
import re
import stat
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import av
import numpy as np
import torch

from ifc_sdk.errors import ConfigError, VideoError
from ifc_sdk.io.decode import AVInput, AVSource
from ifc_sdk.io.images import ArraySource, ImageFilesSource, array_frames, as_frame, natural_key
from ifc_sdk.io.reader import DEFAULT_TIMEOUT, IMAGE_EXTENSIONS, MAX_PIXELS, VideoReader, check_policy

__all__ = [
    "DEFAULT_TIMEOUT",
    "STREAM_SCHEMES",
    "SourceInfo",
    "camera_input",
    "describe_source",
    "open_source",
]

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "tcp", "udp", "srt", "rtp")
_HTTP_SCHEMES = ("http", "https")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")
_V4L2_DEVICE = re.compile(r"^/dev/video\d+$")
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class SourceInfo:
    """What a source is, decided without opening it (for output names and messages).

    Attributes:
        kind: "file", "folder", "glob", "images", "array", "iterator", "url", "stream", "camera" or "pipe".
        name: how messages and results name it (the path or URL; ``"<stdin>"``, ``"camera 0"``, ``"<array>"``).
        stem: a file-name-safe short name for outputs (``"clip"`` for ``a/clip.mp4``, ``"camera0"``, ...).
        live: read once, of unknown length (a stream, camera, pipe or iterator).
    """

    kind: str
    name: str
    stem: str
    live: bool


def describe_source(source: str | os.PathLike | int | Iterable) -> SourceInfo:
    """Classify ``source`` as `open_source` would, without opening it; `ConfigError` for what it refuses."""
    kind, name = _classify(source)
    live = kind in ("stream", "camera", "pipe", "iterator")
    if kind in ("file", "folder"):
        stem = Path(name.rstrip("/\\")).stem or "video"
    elif kind == "glob":
        stem = Path(name).parent.name or "frames"
    elif kind == "images":
        stem = Path(os.fspath(source[0])).parent.name or "frames"
    elif kind in ("url", "stream"):
        parsed = urlparse(name)
        stem = Path(unquote(parsed.path)).stem or parsed.hostname or kind
    elif kind == "camera":  # "camera 0" -> camera0, /dev/video1 -> video1, video=Cam A -> Cam_A
        stem = name.replace(" ", "") if name.startswith("camera ") else Path(name.removeprefix("video=")).name
    else:
        stem = {"pipe": "stdin", "array": "array", "iterator": "frames"}[kind]
    return SourceInfo(kind, name, re.sub(r"[^\w.-]+", "_", stem), live)


def _classify(source) -> tuple[str, str]:
    """``(kind, name)`` of a source; raises `ConfigError` for a type no source has."""
    if isinstance(source, bool):
        raise ConfigError(f"expected a video source (path, URL, camera index, frames); got {source!r}")
    if isinstance(source, int | np.integer):
        return "camera", f"camera {int(source)}"
    if isinstance(source, np.ndarray | torch.Tensor):
        return "array", "<array>"
    if isinstance(source, str | os.PathLike):
        text = os.fspath(source)
        if isinstance(source, str):
            if text == "-":
                return "pipe", "<stdin>"
            match = _URL.match(text)
            if match:
                scheme = match.group(1).lower()
                if scheme == "file":
                    return _classify(Path(unquote(urlparse(text).path)))
                if scheme in _HTTP_SCHEMES:
                    return "url", text
                if scheme in STREAM_SCHEMES:
                    return "stream", text
                raise ConfigError(
                    f"{text}: expected a file, http(s):// URL or a stream ({', '.join(STREAM_SCHEMES)}); "
                    f"the scheme {scheme}:// is not one"
                )
            if _V4L2_DEVICE.match(text) or text.startswith("video="):
                return "camera", text
            if text.isdigit() and not os.path.exists(text):  # "0" from a command line: the first camera
                return "camera", f"camera {int(text)}"
        path = Path(text)
        if path.is_dir():
            return "folder", text
        if path.exists():
            return "file", text
        if _GLOB_CHARS.search(text):
            return "glob", text
        return "file", text  # missing: `open_source` says so
    if isinstance(source, list | tuple):
        if not source:
            raise ConfigError("expected at least one frame or image path; got an empty list")
        if all(isinstance(item, str | os.PathLike) for item in source):
            return "images", f"<{len(source)} images>"
        return "array", "<list of frames>"
    if isinstance(source, bytes | bytearray | dict):
        raise ConfigError(
            f"expected a video source (path, URL, camera index, frames); got {type(source).__name__}"
        )
    if isinstance(source, Iterable):
        return "iterator", "<iterator>"
    raise ConfigError(
        f"expected a video source (path, URL, camera index, frames); got {type(source).__name__}"
    )


def camera_input(
    device: int | str,
    *,
    platform: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    list_devices: Callable[[], list[str]] | None = None,
) -> AVInput:
    """How FFmpeg opens a camera on ``platform`` (default: this one).

    An index ``N`` is ``/dev/videoN`` through v4l2 on Linux, ``"N:none"`` (video N, no audio) through
    avfoundation on macOS, and the N-th video device that dshow lists on Windows (``list_devices`` returns
    their names; default: ask FFmpeg). A ``/dev/videoN`` path (Linux) or ``"video=NAME"`` (Windows) is used as is.
    """
    platform = sys.platform if platform is None else platform
    name = f"camera {device}" if isinstance(device, int) else device
    if platform.startswith("linux"):
        url = f"/dev/video{device}" if isinstance(device, int) else device
        if not _V4L2_DEVICE.match(url):
            raise ConfigError(f"{name}: expected a camera index or /dev/videoN on Linux")
        return AVInput(name, url, "camera", format="v4l2", timeout=timeout)
    if platform == "darwin":
        if not isinstance(device, int):
            raise ConfigError(f"{name}: expected a camera index on macOS (avfoundation)")
        # avfoundation refuses FFmpeg's default 29.97 fps on most built-in cameras
        return AVInput(name, f"{device}:none", "camera", "avfoundation", {"framerate": "30"}, timeout)
    if platform in ("win32", "cygwin"):
        if isinstance(device, str):
            if not device.startswith("video="):
                raise ConfigError(f"{name}: expected a camera index or 'video=NAME' on Windows (dshow)")
            return AVInput(name, device, "camera", format="dshow", timeout=timeout)
        names = (list_devices or _dshow_video_devices)()
        if not 0 <= device < len(names):
            found = ", ".join(repr(n) for n in names) or "none"
            raise VideoError(name, f"expected a video device with index {device}; dshow lists {found}")
        return AVInput(name, f"video={names[device]}", "camera", format="dshow", timeout=timeout)
    raise ConfigError(
        f"{name}: cameras are read through v4l2, avfoundation or dshow; none exists on {platform}"
    )


def _dshow_video_devices() -> list[str]:  # pragma: no cover - Windows only
    try:
        devices = av.device.enumerate_input_devices("dshow")
    except (ValueError, av.FFmpegError) as e:
        raise VideoError("dshow", f"expected FFmpeg to list the cameras; it cannot ({e})") from e
    return [d.name.removeprefix("video=") for d in devices if "video" in d.media_types]


def _check_camera(spec: AVInput) -> None:
    """A missing device or an FFmpeg build without the device input: say so before FFmpeg does."""
    names = {name for entry in av.formats_available for name in entry.split(",")}
    if spec.format not in names:
        raise VideoError(
            spec.name, f"expected FFmpeg's {spec.format} input for cameras; this PyAV build lacks it"
        )
    if spec.format == "v4l2" and not os.path.exists(spec.url):
        found = sorted(glob.glob("/dev/video*"), key=natural_key)
        raise VideoError(
            spec.name,
            f"expected a camera at {spec.url}; no such device (cameras found: {', '.join(found) or 'none'})",
        )


def open_source(
    source: str | os.PathLike | int | Iterable,
    *,
    prefetch: int = 16,
    timeout: float | None = DEFAULT_TIMEOUT,
    on_damage: str = "warn",
    max_pixels: int | None = MAX_PIXELS,
    options: dict[str, str] | None = None,
) -> VideoReader:
    """Open any source in the module's table as a `VideoReader` (nothing is decoded beyond the first frame).

    Args:
        source: see the module docstring.
        prefetch: frames decoded ahead in the background thread.
        timeout: seconds to wait for a URL, network stream or camera to open and between reads (None: forever).
        on_damage: "warn", "error" or "ignore" for frames lost or corrupt (`ifc_sdk.io.damage`).
        max_pixels: largest frame (height x width) accepted; None for no limit.
        options: FFmpeg input options for URLs, streams and cameras (e.g. ``{"rtsp_transport": "tcp"}``).

    Raises:
        VideoError: the source is missing, cannot be opened or decoded (naming it), or is too large.
        ConfigError: an argument is invalid, or frames in memory are not uint8 RGB of one size.
    """
    check_policy(on_damage)
    if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
        raise ConfigError(f"timeout: expected seconds > 0 or None, got {timeout!r}")
    kind, name = _classify(source)
    frames = _open_frames(source, kind, name, timeout, max_pixels, dict(options or {}))
    try:
        return VideoReader(frames, prefetch=prefetch, on_damage=on_damage, max_pixels=max_pixels)
    except BaseException:
        frames.close()
        raise


def _open_frames(source, kind: str, name: str, timeout, max_pixels, options):
    if kind == "array":
        items = array_frames(source) if isinstance(source, np.ndarray | torch.Tensor) else source
        return ArraySource(name, items, as_frame(items[0], 0), restartable=True)
    if kind == "iterator":
        it = iter(source)
        first = next(it, None)
        if first is None:
            raise ConfigError("expected at least one frame; the iterator yielded none")
        return ArraySource(name, it, as_frame(first, 0), restartable=False)
    if kind == "images":
        return ImageFilesSource(name, _image_list(source), max_pixels)
    if kind == "glob":
        return ImageFilesSource(name, _glob_images(name), max_pixels)
    if kind == "folder":
        return ImageFilesSource(name, _folder_images(name), max_pixels)
    if kind == "camera":
        device = int(source) if isinstance(source, int | np.integer) or source.isdigit() else source
        spec = camera_input(device, timeout=timeout)
        spec = AVInput(spec.name, spec.url, spec.kind, spec.format, {**spec.options, **options}, spec.timeout)
        _check_camera(spec)
        return AVSource.open(spec, max_pixels=max_pixels)
    if kind == "pipe":
        return AVSource.open(AVInput(name, "pipe:0", "pipe", options=options), max_pixels=max_pixels)
    if kind in ("url", "stream"):
        return AVSource.open(
            AVInput(name, name, kind, options=options, timeout=timeout), max_pixels=max_pixels
        )
    return _open_file(source, name, max_pixels)


def _open_file(source, name: str, max_pixels):
    path = Path(name)
    if not path.exists():
        raise VideoError(
            name, "expected a video file or a folder of frame images; nothing exists at this path"
        )
    mode = path.stat().st_mode
    if stat.S_ISFIFO(mode):  # a named pipe: FFmpeg reads it once
        return AVSource.open(AVInput(name, name, "pipe"), max_pixels=max_pixels)
    if not stat.S_ISREG(mode):
        raise VideoError(name, "expected a video file or a folder of frame images; found a special file")
    if path.stat().st_size == 0:
        raise VideoError(name, "expected a video file; found an empty file (0 bytes)")
    if path.suffix.lower() in IMAGE_EXTENSIONS:  # one image: a one-frame video, in EXIF orientation
        return ImageFilesSource(name, [path], max_pixels)
    return AVSource.open(AVInput(name, name, "file"), max_pixels=max_pixels)


def _folder_images(name: str) -> list[Path]:
    path = Path(name)
    files = sorted(
        (p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
        key=lambda p: natural_key(p.name),
    )
    if not files:
        entries = sum(1 for _ in path.iterdir())
        found = (
            "an empty folder"
            if entries == 0
            else f"{entries} entries, none named *{'/*'.join(IMAGE_EXTENSIONS)}"
        )
        raise VideoError(name, f"expected a folder of frame images (JPEG/PNG); found {found}")
    return files


def _glob_images(pattern: str) -> list[Path]:
    matches = [Path(p) for p in glob.glob(pattern, recursive=True)]
    files = sorted(
        (p for p in matches if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
        key=lambda p: natural_key(str(p)),
    )
    if not files:
        found = f"{len(matches)} path(s), none a JPEG/PNG file" if matches else "no path"
        raise VideoError(
            pattern, f"expected the pattern to match frame images (JPEG/PNG); it matches {found}"
        )
    return files


def _image_list(paths) -> list[Path]:
    files = [Path(os.fspath(p)) for p in paths]
    for file in files:
        if not file.is_file():
            raise VideoError(
                file, "expected a frame image (JPEG/PNG) from the list of paths; nothing exists here"
            )
    return files
