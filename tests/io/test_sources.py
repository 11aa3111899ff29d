"""open_source: every kind of source, with local resources only (files, an HTTP server and a TCP pusher on
127.0.0.1, arrays, generators); cameras by their argument mapping and the error for a missing device."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from make_videos import write_frame_folder, write_video
from PIL import Image
from streams import http_server, lossless_ts, tcp_pusher

from ifc_sdk.errors import ConfigError, VideoError
from ifc_sdk.inference.preprocess import resize_frames
from ifc_sdk.io.decode import AVInput
from ifc_sdk.io.sources import camera_input, describe_source, open_source
from ifc_sdk.io.video import CorruptVideoWarning


def _images(reader) -> list[np.ndarray]:
    with reader:
        return [f.image for f in reader]


def _frames(n: int = 6, size: tuple[int, int] = (24, 32), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *size, 3), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------- classification
@pytest.mark.parametrize(
    ("source", "kind", "stem", "live"),
    [
        ("clip.mp4", "file", "clip", False),
        ("frames/*.jpg", "glob", "frames", False),
        ("http://host/videos/walk.mp4", "url", "walk", False),
        ("https://host/a%20b.mkv?x=1", "url", "a_b", False),
        ("rtsp://cam.local:554/live", "stream", "live", True),
        ("rtmp://host/app/key", "stream", "key", True),
        ("tcp://127.0.0.1:9000", "stream", "127.0.0.1", True),
        ("udp://127.0.0.1:9000", "stream", "127.0.0.1", True),
        ("srt://host:7000", "stream", "host", True),
        ("-", "pipe", "stdin", True),
        (0, "camera", "camera0", True),
        ("1", "camera", "camera1", True),
        (np.int64(2), "camera", "camera2", True),
        ("/dev/video1", "camera", "video1", True),
        (np.zeros((2, 4, 4, 3), np.uint8), "array", "array", False),
        (torch.zeros(2, 3, 4, 4, dtype=torch.uint8), "array", "array", False),
        ([np.zeros((4, 4, 3), np.uint8)], "array", "array", False),
        (["a/1.png", Path("a/2.png")], "images", "a", False),
        ((f for f in []), "iterator", "frames", True),
    ],
)
def test_describe_source(source, kind, stem, live):
    info = describe_source(source)
    assert (info.kind, info.stem, info.live) == (kind, stem, live)


def test_describe_source_of_paths_on_disk(tmp_path):
    (tmp_path / "frames").mkdir()
    assert describe_source(tmp_path / "frames").kind == "folder"
    assert describe_source(str(tmp_path / "frames") + "/").stem == "frames"
    assert describe_source(f"file://{tmp_path}/x.mp4").kind == "file"


@pytest.mark.parametrize(
    "source", [True, b"bytes", [], {"a": 1}, 1.5, "ftp://host/clip.mp4", "hf://org/model"]
)
def test_unsupported_sources_are_config_errors(source):
    with pytest.raises(ConfigError):
        describe_source(source)


# ---------------------------------------------------------------------------------------------- cameras
@pytest.mark.parametrize(
    ("device", "platform", "url", "fmt", "options"),
    [
        (0, "linux", "/dev/video0", "v4l2", {}),
        ("/dev/video3", "linux", "/dev/video3", "v4l2", {}),
        (1, "darwin", "1:none", "avfoundation", {"framerate": "30"}),
        (1, "win32", "video=Cam B", "dshow", {}),
        ("video=Cam A", "win32", "video=Cam A", "dshow", {}),
    ],
)
def test_camera_argument_mapping(device, platform, url, fmt, options):
    spec = camera_input(device, platform=platform, timeout=3.0, list_devices=lambda: ["Cam A", "Cam B"])
    assert spec == AVInput(
        f"camera {device}" if isinstance(device, int) else device, url, "camera", fmt, options, 3.0
    )
    assert not spec.restartable


def test_camera_mapping_errors():
    with pytest.raises(VideoError, match="camera 2.*'Cam A'"):
        camera_input(2, platform="win32", list_devices=lambda: ["Cam A"])
    with pytest.raises(ConfigError, match="Linux"):
        camera_input("video=Cam", platform="linux")
    with pytest.raises(ConfigError, match="macOS"):
        camera_input("/dev/video0", platform="darwin")
    with pytest.raises(ConfigError, match="freebsd"):
        camera_input(0, platform="freebsd14")


def test_missing_camera_is_a_video_error_naming_it():
    with pytest.raises(VideoError) as info:
        open_source(57)
    assert info.value.path == "camera 57" and "camera" in str(info.value)


# ---------------------------------------------------------------------------------------------- in memory
def test_arrays_tensors_lists_and_generators_give_the_same_frames():
    frames = _frames()
    chw = torch.from_numpy(frames).permute(0, 3, 1, 2)
    sources = {
        "array": frames,
        "tensor_hwc": torch.from_numpy(frames),
        "tensor_chw": chw,
        "list_hwc": list(frames),
        "list_chw": list(chw),
        "generator": (f for f in frames),
        "generator_chw": (t for t in chw),
    }
    for name, source in sources.items():
        reader = open_source(source)
        assert reader.size == (24, 32), name
        assert reader.num_frames_hint == (None if name.startswith("generator") else 6), name
        got = _images(reader)
        np.testing.assert_array_equal(np.stack(got), frames, err_msg=name)


def test_in_memory_sources_read_again_or_once():
    frames = _frames(3)
    reader = open_source(frames)
    assert len(_images(open_source(frames))) == 3
    assert len(list(reader)) == len(list(reader)) == 3  # arrays: every pass from the start
    once = open_source(iter(list(frames)))
    assert len(list(once)) == 3
    with pytest.raises(VideoError, match="only once"):
        list(once)


@pytest.mark.parametrize(
    ("source", "words"),
    [
        (np.zeros((2, 0, 0, 3), np.uint8), "non-empty"),
        (np.zeros((0, 4, 4, 3), np.uint8), "at least one frame"),
        (np.zeros((4, 4, 3), np.uint8), "x[None]"),
        (np.zeros((2, 4, 4, 3), np.float32), "uint8"),
        (np.zeros((2, 4, 4, 3), np.uint16), "x >> 8"),
        ([np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4, 3), np.uint8)], "frame 1"),
        ([np.zeros((4, 4), np.uint8)], "(H, W, 3)"),
        (iter([]), "yielded none"),
    ],
)
def test_bad_frames_are_config_errors(source, words):
    with pytest.raises(ConfigError, match=None) as info:
        list(open_source(source))
    assert words in str(info.value)


# ---------------------------------------------------------------------------------------------- image files
def test_glob_and_path_list(tmp_path):
    names = ["f_1.png", "f_2.png", "f_10.png", "f_3.png"]
    images = dict(zip(names, write_frame_folder(tmp_path / "d", names), strict=True))
    (tmp_path / "d" / "notes.txt").write_text("x")
    globbed = _images(open_source(str(tmp_path / "d" / "*.png")))
    for got, name in zip(globbed, ["f_1.png", "f_2.png", "f_3.png", "f_10.png"], strict=True):
        np.testing.assert_array_equal(got, images[name])  # natural order: 10 after 3
    order = ["f_10.png", "f_1.png"]
    listed = _images(open_source([tmp_path / "d" / n for n in order]))
    np.testing.assert_array_equal(np.stack(listed), np.stack([images[n] for n in order]))
    single = _images(open_source(tmp_path / "d" / "f_2.png"))  # one image: a one-frame video
    np.testing.assert_array_equal(single[0], images["f_2.png"])


def test_glob_and_list_errors_name_the_path(tmp_path):
    with pytest.raises(VideoError, match=r"nothing\*\.png.*no path"):
        open_source(str(tmp_path / "nothing*.png"))
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(VideoError, match="none a JPEG/PNG"):
        open_source(str(tmp_path / "*.txt"))
    with pytest.raises(VideoError) as info:
        open_source([tmp_path / "missing.png"])
    assert info.value.path == str(tmp_path / "missing.png")


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    grey = np.arange(24 * 32, dtype=np.uint16).reshape(24, 32) * 85  # 0 .. 65195
    Image.fromarray(grey).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    (image,) = _images(open_source(tmp_path / "g16.png"))
    expected = (grey >> 8).astype(np.uint8)
    np.testing.assert_array_equal(image, np.repeat(expected[..., None], 3, axis=2))
    assert (image == 255).mean() < 0.01  # clipping made 99.6% of pixels 255


# ---------------------------------------------------------------------------------------------- size limits
def test_frames_above_max_pixels_are_refused_naming_the_override(tmp_path):
    video = write_video(tmp_path / "clip.mp4", num_frames=2, size=(48, 64))
    for source in (video, _frames(2, (48, 64))):
        with pytest.raises(VideoError, match="max_pixels=None"):
            open_source(source, max_pixels=48 * 64 - 1)
        assert len(_images(open_source(source, max_pixels=48 * 64))) == 2
    Image.fromarray(_frames(1, (48, 64))[0]).save(tmp_path / "big.png")
    with pytest.raises(VideoError, match="3.1 kpx|3,072 pixels|max_pixels"):
        open_source(tmp_path / "big.png", max_pixels=1000)


def test_decode_thread_resizes_exactly_like_the_segmenter(tmp_path):
    frames = _frames(4, (60, 90))
    reader = open_source(frames)
    reader.resize = (40, 60)
    got = np.stack(_images(reader))
    expected = resize_frames(torch.from_numpy(frames).permute(0, 3, 1, 2), (40, 60)).permute(0, 2, 3, 1)
    np.testing.assert_array_equal(got, expected.numpy())


def test_queue_holds_network_size_frames(tmp_path):
    """2000x2000 frames: 8 decoded ahead hold 96 MB at full size, 55 kB resized to 48x48 in the thread."""
    flat = [np.full((2000, 2000, 3), 20 * i, np.uint8) for i in range(10)]  # quick to encode and decode
    path = write_video(tmp_path / "big.mp4", images=flat)
    queued = {}
    for resize in (None, (48, 48)):
        with open_source(path, prefetch=8) as reader:
            reader.resize = resize
            frames = iter(reader)
            next(frames)
            deadline = time.monotonic() + 60
            while reader._queue.qsize() < 8 and time.monotonic() < deadline:
                time.sleep(0.02)
            queued[resize] = sum(f.image.nbytes for f in list(reader._queue.queue) if hasattr(f, "image"))
            assert 1 + sum(1 for _ in frames) == 10
    assert queued[None] == 8 * 2000 * 2000 * 3
    assert queued[(48, 48)] == 8 * 48 * 48 * 3


# ---------------------------------------------------------------------------------------------- network
def test_http_url_reads_like_the_file(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", num_frames=8)
    local = _images(open_source(clip))
    with http_server(tmp_path) as base:
        reader = open_source(f"{base}/clip.mp4")
        assert reader.path == f"{base}/clip.mp4" and not reader.live and reader.num_frames_hint == 8
        remote = _images(reader)
        with pytest.raises(VideoError, match="404") as info:
            open_source(f"{base}/missing.mp4")
    assert info.value.path == f"{base}/missing.mp4"
    np.testing.assert_array_equal(np.stack(remote), np.stack(local))


def test_tcp_mpegts_stream_from_a_writer_thread():
    frames = _frames(10, (40, 56))
    with tcp_pusher(lossless_ts(frames)) as url:
        reader = open_source(url)
        assert reader.live and reader.num_frames_hint is None
        got = _images(reader)
    np.testing.assert_array_equal(np.stack(got), frames)
    assert not reader.report.damaged


def test_stream_interrupted_half_way_keeps_the_frames_it_sent():
    frames = _frames(30, (40, 56))
    with tcp_pusher(lossless_ts(frames), upto=0.5) as url:
        with open_source(url) as reader, pytest.warns(CorruptVideoWarning, match=url):
            got = list(reader)
    assert 5 <= len(got) < 30 and [f.index for f in got] == list(range(len(got)))
    whole = [f for f in got if not f.corrupt]  # the frame cut by the hang-up is concealed and flagged
    assert len(whole) >= len(got) - 1 and reader.report.frames_corrupt == len(got) - len(whole)
    np.testing.assert_array_equal(np.stack([f.image for f in whole]), frames[: len(whole)])


def test_reader_stopped_mid_stream_releases_the_connection():
    frames = _frames(30, (40, 56))
    with tcp_pusher(lossless_ts(frames)) as url:
        with open_source(url, prefetch=2) as reader:
            for frame in reader:
                if frame.index == 3:
                    break
    assert not any(t.name.startswith("ifc-video-decode") and t.is_alive() for t in threading.enumerate())
    with pytest.raises(VideoError, match="only once|closed"):
        list(reader)


def test_network_timeout_and_refusal_are_video_errors_naming_the_url():
    with tcp_pusher(b"", hold_s=10) as url:
        start = time.monotonic()
        with pytest.raises(VideoError, match="within 0.5 s") as info:
            open_source(url, timeout=0.5)
        assert time.monotonic() - start < 5
        assert info.value.path == url
    with tcp_pusher(b"") as url:
        pass  # the listener is closed: nothing answers on that port now
    with pytest.raises(VideoError) as info:
        open_source(url, timeout=2)
    assert info.value.path == url
    with pytest.raises(ConfigError, match="timeout"):
        open_source(url, timeout=0)
