"""open_video: real clips, odd formats, rotation, VFR, broken inputs, frame folders, the decoding thread."""

from __future__ import annotations

import os
import threading
import time
import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from damaged_videos import marked_index, write_marked, zero_range
from make_videos import (
    flip_bytes,
    marker_image,
    pattern,
    truncate,
    write_audio_only,
    write_frame_folder,
    write_video,
    zero_payload,
)
from PIL import Image

from ifc_sdk.errors import ConfigError, VideoError
from ifc_sdk.io import decode as decode_mod
from ifc_sdk.io.video import CorruptVideoWarning, Frame, iter_batches, open_video

VIDEOS = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "videos"


def _decode_all(source, **kwargs):
    with open_video(source, **kwargs) as reader:
        frames = list(reader)
    return reader, frames


def _check_frames(frames: list[Frame], size: tuple[int, int]) -> None:
    for i, frame in enumerate(frames):
        assert frame.index == i
        assert frame.image.dtype == np.uint8
        assert frame.image.shape == (*size, 3)
        assert frame.image.flags.c_contiguous


# ---------------------------------------------------------------------------------------------- real clips
@pytest.mark.parametrize(
    ("name", "num_frames", "size", "fps"),
    [
        ("bigbuckbunny.mp4", 132, (720, 1280), 25.0),
        ("bikes.mp4", 250, (272, 640), 25.0),
        ("carphone_pristine.mp4", 120, (144, 176), 30000 / 1001),
    ],
)
def test_real_clips_decode_every_frame(name, num_frames, size, fps):
    path = VIDEOS / name
    if not path.exists():
        pytest.skip(f"real test clips not found at {VIDEOS} (expected ../shared beside the repository)")
    reader, frames = _decode_all(path)
    assert len(frames) == num_frames == reader.num_frames_decoded
    assert reader.size == size
    assert reader.fps == pytest.approx(fps, rel=1e-4)
    assert reader.num_corrupt == 0
    _check_frames(frames, size)
    stamps = np.array([f.timestamp for f in frames])
    assert np.all(np.diff(stamps) > 0)
    assert stamps[-1] - stamps[0] == pytest.approx((num_frames - 1) / fps, rel=1e-3)
    assert frames[0].image.std() > 5  # real content, not a blank frame


# ---------------------------------------------------------------------------------------------- odd inputs
def test_single_frame_video(tmp_path):
    reader, frames = _decode_all(write_video(tmp_path / "one.mp4", num_frames=1))
    assert len(frames) == 1 and reader.num_frames_hint == 1
    _check_frames(frames, (48, 64))


@pytest.mark.parametrize(
    ("name", "codec", "pix_fmt", "size", "max_err", "hint_is_none"),
    [
        ("odd444.mp4", "libx264", "yuv444p", (177, 333), 12.0, False),
        ("odd444.mkv", "ffv1", "yuv444p", (177, 333), 3.0, True),
        ("ten_bit.mp4", "libx264", "yuv420p10le", (48, 64), 12.0, False),
        ("ten_bit.mkv", "ffv1", "yuv420p10le", (48, 64), 6.0, True),
        ("gray.mkv", "ffv1", "gray", (48, 64), None, True),
        ("gray.mp4", "libx264", "gray", (48, 64), None, False),
        ("mpeg4.avi", "mpeg4", "yuv420p", (48, 64), 20.0, False),
        ("vp9.webm", "libvpx-vp9", "yuv420p", (48, 64), 20.0, True),
    ],
)
def test_odd_formats(tmp_path, name, codec, pix_fmt, size, max_err, hint_is_none):
    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV/FFmpeg build has no {codec} encoder")
    path = write_video(tmp_path / name, num_frames=3, size=size, codec=codec, pix_fmt=pix_fmt)
    reader, frames = _decode_all(path)
    assert len(frames) == 3
    assert reader.size == size
    assert reader.fps == pytest.approx(10.0)
    assert (reader.num_frames_hint is None) == hint_is_none  # Matroska/WebM headers carry no count
    _check_frames(frames, size)
    for i, frame in enumerate(frames):
        expected = pattern(i, *size).astype(np.float32)
        if max_err is None:  # grayscale: every channel equal, close to the luma of the source
            img = frame.image.astype(np.float32)
            assert (
                np.abs(img[..., 0] - img[..., 1]).max() <= 1 and np.abs(img[..., 0] - img[..., 2]).max() <= 1
            )
            luma = expected @ np.array([0.299, 0.587, 0.114], np.float32)
            assert np.abs(img[..., 0] - luma).mean() < 12
        else:
            assert np.abs(frame.image.astype(np.float32) - expected).mean() < max_err


def test_4k_video(tmp_path):
    path = write_video(tmp_path / "uhd.mp4", num_frames=2, size=(2160, 3840))
    reader, frames = _decode_all(path, prefetch=1)
    assert reader.size == (2160, 3840) and len(frames) == 2
    _check_frames(frames, (2160, 3840))


def test_variable_frame_rate_timestamps(tmp_path):
    pts_ms = [0, 40, 100, 110, 250, 400, 433]
    path = write_video(tmp_path / "vfr.mp4", num_frames=len(pts_ms), pts_ms=pts_ms, options={"bframes": "0"})
    _, frames = _decode_all(path)
    assert [f.timestamp for f in frames] == pytest.approx([p / 1000 for p in pts_ms], abs=1e-6)


def test_constant_rate_timestamps(tmp_path):
    path = write_video(tmp_path / "cfr.mp4", num_frames=5, rate=Fraction(30000, 1001))
    reader, frames = _decode_all(path)
    assert reader.fps == pytest.approx(29.97, abs=1e-2)
    assert [f.timestamp for f in frames] == pytest.approx([i * 1001 / 30000 for i in range(5)], abs=1e-6)


# Expected corner of the (top-left) marker once displayed, and the displayed (height, width) of a 32x64
# frame; rotations are counter-clockwise, checked against `ffmpeg -i ... out.png` (autorotate).
@pytest.mark.parametrize(
    ("rotation", "hflip", "vflip", "size", "corner"),
    [
        (0, False, False, (32, 64), "top-left"),
        (90, False, False, (64, 32), "bottom-left"),
        (-90, False, False, (64, 32), "top-right"),
        (180, False, False, (32, 64), "bottom-right"),
        (0, True, False, (32, 64), "top-right"),
        (0, False, True, (32, 64), "bottom-left"),
        (90, True, False, (64, 32), "bottom-right"),
        (90, False, True, (64, 32), "top-left"),
    ],
)
def test_rotation_metadata_is_applied(tmp_path, rotation, hflip, vflip, size, corner):
    path = write_video(
        tmp_path / "rot.mp4",
        images=[marker_image(32, 64, marker=10)] * 2,
        rotation=rotation,
        hflip=hflip,
        vflip=vflip,
    )
    with av.open(str(path)) as container:  # the file really carries the matrix
        matrix = next(container.decode(video=0)).side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
    assert (matrix is not None) == (rotation != 0 or hflip or vflip)
    reader, frames = _decode_all(path)
    assert reader.size == size
    img = frames[0].image[..., 0].astype(np.float32)
    h, w = size
    corners = {
        "top-left": img[:6, :6],
        "top-right": img[:6, w - 6 :],
        "bottom-left": img[h - 6 :, :6],
        "bottom-right": img[h - 6 :, w - 6 :],
    }
    brightest = max(corners, key=lambda k: corners[k].mean())
    assert brightest == corner
    assert corners[corner].mean() > 200
    _check_frames(frames, size)


# ---------------------------------------------------------------------------------------------- bad inputs
def _expect_video_error(path: Path, *words: str) -> VideoError:
    with pytest.raises(VideoError) as info:
        open_video(path)
    err = info.value
    assert err.path == str(path) and str(path) in str(err)
    for word in words:
        assert word in str(err)
    return err


def test_missing_path(tmp_path):
    _expect_video_error(tmp_path / "nope.mp4", "nothing exists")


def test_empty_folder_and_folder_without_images(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    _expect_video_error(empty, "frame images", "empty folder")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("hello")
    (other / "clip.mp4").write_bytes(b"")
    _expect_video_error(other, "frame images", "2 entries")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    _expect_video_error(path, "0 bytes")


def test_text_file_named_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 20)
    err = _expect_video_error(path, "expected a video container", "text file")
    assert err.__cause__ is not None


def test_audio_only_file(tmp_path):
    path = write_audio_only(tmp_path / "audio.mp4")
    _expect_video_error(path, "expected a video stream", "1 audio stream")


def test_first_frame_not_decodable(tmp_path):
    good = write_video(tmp_path / "good.mp4", num_frames=5, container_options={"movflags": "faststart"})
    bad = zero_payload(good, tmp_path / "zeroed.mp4")
    err = _expect_video_error(bad, "first frame")
    assert err.__cause__ is not None or "none could be decoded" in str(err)


def test_truncated_file_without_index(tmp_path):
    good = write_video(tmp_path / "good.mp4", num_frames=30)  # index (moov) at the end: truncation loses it
    _expect_video_error(truncate(good, tmp_path / "cut.mp4", 0.5), "expected a video container")


# ---------------------------------------------------------------------------------------------- damaged video
def _decode_damaged(path: Path, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reader, frames = _decode_all(path, **kwargs)
    told = [w for w in caught if issubclass(w.category, CorruptVideoWarning)]
    return reader, frames, told


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_zeros_inside_a_video_keep_every_later_frame_in_its_slot(tmp_path, suffix):
    good = write_marked(tmp_path / f"good{suffix}")
    bad = zero_range(good, tmp_path / f"zeros{suffix}", 0.4, 0.45)
    reader, frames, told = _decode_damaged(bad)
    report = reader.report
    assert [f.index for f in frames] == list(range(60))  # nothing re-indexed, nothing dropped
    missing = [f.index for f in frames if f.missing]
    assert 3 <= len(missing) <= 15 and missing == report.missing
    assert missing == list(range(missing[0], missing[-1] + 1))  # one run of lost frames
    for frame in frames:
        if frame.missing:  # the previous good frame stands in
            assert frame.image is frames[missing[0] - 1].image
        elif not frame.corrupt:
            assert marked_index(frame.image) == frame.index
    assert report.frames_expected == 60 and report.frames_decoded == 60 - len(missing)
    assert (
        len(told) == 1
        and str(bad) in str(told[0].message)
        and f"{len(missing)} missing" in str(told[0].message)
    )
    stamps = [f.timestamp for f in frames]
    np.testing.assert_allclose(stamps, np.arange(60) / 10, atol=1e-3)  # missing slots keep their time too


def test_garbage_bytes_flag_corrupt_frames_and_keep_the_frame_count(tmp_path):
    good = write_marked(tmp_path / "good.mp4")
    bad = flip_bytes(good, tmp_path / "flipped.mp4", at=(0.3, 0.5, 0.7), count=40, seed=1)
    reader, frames, told = _decode_damaged(bad)
    assert [f.index for f in frames] == list(range(60))
    assert reader.report.damaged and reader.report.frames_corrupt + len(reader.report.missing) >= 1
    assert len(told) == 1 and str(bad) in str(told[0].message)
    assert all(marked_index(f.image) == f.index for f in frames[48:])  # after the last keyframe: intact


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_truncated_file_reports_the_frames_missing_at_the_end(tmp_path, suffix):
    options = {"movflags": "faststart"} if suffix == ".mp4" else {}  # an mp4 needs its index up front
    good = write_marked(tmp_path / f"good{suffix}", container_options=options)
    cut = truncate(good, tmp_path / f"cut{suffix}", 0.6)
    reader, frames, told = _decode_damaged(cut)
    n = len(frames)
    assert 20 <= n < 60 and [f.index for f in frames] == list(range(n))
    assert all(marked_index(f.image) == f.index for f in frames if not f.corrupt)
    assert reader.report.frames_expected == 60 and reader.report.missing_at_end == 60 - n
    assert len(told) == 1 and f"{60 - n} missing at the end" in str(told[0].message)


def test_file_truncated_while_being_read(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (60, 96, 128, 3), dtype=np.uint8)  # large packets
    path = write_video(tmp_path / "growing.mkv", images=list(noise))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_video(path, prefetch=1) as reader:
            frames = []
            for frame in reader:
                frames.append(frame)
                if frame.index == 4:
                    os.truncate(path, path.stat().st_size // 3)
    assert 5 <= len(frames) < 60
    assert reader.report.missing_at_end == 60 - len(frames) or reader.report.stopped_by
    assert any(str(path) in str(w.message) for w in caught if issubclass(w.category, CorruptVideoWarning))


def test_on_damage_error_raises_naming_the_file_and_ignore_is_silent(tmp_path):
    bad = zero_range(write_marked(tmp_path / "good.mkv"), tmp_path / "zeros.mkv", 0.4, 0.45)
    with (
        open_video(bad, on_damage="error") as reader,
        pytest.raises(VideoError, match="on_damage='error'") as info,
    ):
        list(reader)
    assert info.value.path == str(bad) and "damaged video: frame 2" in str(info.value)
    cut = truncate(write_marked(tmp_path / "whole.mkv"), tmp_path / "cut.mkv", 0.5)
    with open_video(cut, on_damage="error") as reader, pytest.raises(VideoError, match="missing at the end"):
        list(reader)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reader, frames = _decode_all(bad, on_damage="ignore")
    assert len(frames) == 60 and reader.report.missing
    with pytest.raises(ConfigError, match="on_damage"):
        open_video(bad, on_damage="raise")


def test_healthy_videos_report_no_damage(tmp_path):
    for name, kwargs in [
        ("a.mp4", {}),
        ("b.mkv", {"codec": "ffv1"}),
        ("vfr.mkv", {"codec": "ffv1", "pts_ms": [0, 40, 130, 135, 600, 640, 1200]}),
    ]:
        reader, frames, told = _decode_damaged(write_video(tmp_path / name, num_frames=7, **kwargs))
        assert len(frames) == 7 and not reader.report.damaged and not told, name


def test_error_mid_stream_is_reraised_as_video_error(tmp_path, monkeypatch):
    path = write_video(tmp_path / "clip.mp4", num_frames=10)
    real = decode_mod._to_rgb
    calls = {"n": 0}

    def flaky(frame, width, height):
        calls["n"] += 1
        if calls["n"] == 4:
            raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")
        return real(frame, width, height)

    monkeypatch.setattr(decode_mod, "_to_rgb", flaky)
    got = []
    with open_video(path) as reader, pytest.raises(VideoError) as info:
        for frame in reader:
            got.append(frame.index)
    assert got == [0, 1, 2]
    assert info.value.path == str(path) and "frame 3" in str(info.value)
    assert isinstance(info.value.__cause__, av.error.InvalidDataError)


def test_bad_prefetch_is_config_error(tmp_path):
    path = write_video(tmp_path / "clip.mp4", num_frames=1)
    with pytest.raises(ConfigError):
        open_video(path, prefetch=0)


# ---------------------------------------------------------------------------------------------- frame folders
def test_frame_folder_of_jpegs(tmp_path):
    names = [f"frame_{i}.jpg" for i in (0, 1, 2, 5, 10, 11)]  # natural order: 10 after 5
    images = write_frame_folder(tmp_path / "clip", names)
    (tmp_path / "clip" / "meta.json").write_text("{}")
    reader, frames = _decode_all(tmp_path / "clip")
    assert reader.size == (24, 32) and reader.fps is None and reader.num_frames_hint == 6
    assert len(frames) == 6 and all(f.timestamp is None for f in frames)
    _check_frames(frames, (24, 32))
    for frame, name in zip(frames, names, strict=True):  # the same pixels PIL decodes, in natural order
        np.testing.assert_array_equal(
            frame.image, np.asarray(Image.open(tmp_path / "clip" / name).convert("RGB"))
        )
    assert np.abs(frames[3].image.astype(int) - images[3]).mean() < 12


def test_frame_folder_ytvis_names_and_png(tmp_path):
    names = ["00000.png", "00005.png", "00010.png"]
    images = write_frame_folder(tmp_path / "v", names, size=(9, 13))
    _, frames = _decode_all(tmp_path / "v")
    for frame, img in zip(frames, images, strict=True):
        np.testing.assert_array_equal(frame.image, img)


def test_frame_folder_with_broken_or_mismatched_image(tmp_path):
    write_frame_folder(tmp_path / "a", ["00000.jpg", "00001.jpg"])
    (tmp_path / "a" / "00002.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with open_video(tmp_path / "a") as reader, pytest.raises(VideoError) as info:
        list(reader)
    assert "00002.jpg" in str(info.value)
    write_frame_folder(tmp_path / "b", ["00000.png"], size=(24, 32))
    write_frame_folder(tmp_path / "b", ["00001.png"], size=(20, 32))
    with open_video(tmp_path / "b") as reader, pytest.raises(VideoError) as info:
        list(reader)
    assert "00001.png" in str(info.value) and "32x24" in str(info.value)


# ---------------------------------------------------------------------------------------------- the thread
def test_prefetch_bounds_the_queue_and_close_is_prompt(tmp_path):
    path = write_video(tmp_path / "long.mp4", num_frames=60, size=(64, 96))
    reader = open_video(path, prefetch=3)
    it = iter(reader)
    first = next(it)
    assert first.index == 0
    time.sleep(0.3)  # let the producer fill the queue
    assert reader._queue.qsize() <= 3
    thread = reader._thread
    assert thread.is_alive()
    start = time.perf_counter()
    reader.close()
    assert time.perf_counter() - start < 1.0
    assert not thread.is_alive()
    with pytest.raises(VideoError):
        iter(reader)


def test_breaking_out_stops_the_thread_and_reiteration_restarts(tmp_path):
    path = write_video(tmp_path / "clip.mp4", num_frames=12)
    with open_video(path, prefetch=2) as reader:
        for frame in reader:
            if frame.index == 2:
                break
        thread = reader._thread
        again = list(reader)  # a new iteration starts from frame 0
        assert thread is None or not thread.is_alive()
        assert [f.index for f in again] == list(range(12))
        assert reader.num_frames_decoded == 12
    assert not any(t.name.startswith("ifc-video-decode") and t.is_alive() for t in threading.enumerate())


def test_iter_batches(tmp_path):
    path = write_video(tmp_path / "clip.mp4", num_frames=10)
    with open_video(path) as reader:
        batches = list(iter_batches(reader, 4))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert [f.index for b in batches for f in b] == list(range(10))
    with pytest.raises(ConfigError):
        next(iter_batches([], 0))
