"""segment_video end to end: decoding, streaming, equality with in-memory inference, errors, memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import VIDEOS, require
from reference import meta, model, rgb_frames, tensors
from tiny import tiny_model

import ifc_sdk
from ifc_sdk.errors import ConfigError, IFCError, VideoError
from ifc_sdk.inference.predictor import check_window


def write_lossless(frames: np.ndarray, path: Path, fps: int = 25) -> Path:
    """FFV1 in Matroska (bgr0): decodes back to exactly the same RGB frames."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=Fraction(fps, 1))
        stream.pix_fmt = "bgr0"
        stream.height, stream.width = frames.shape[1:3]
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.mark.parametrize(("name", "run"), [("r50_seed0", "T3_S1"), ("r101_seed1", "T4_S2")])
def test_segment_video_file_matches_reference(tmp_path, name, run):
    info = meta()["models"][name]
    spec = info["video_runs"][run]
    ref = tensors(spec["file"])
    path = write_lossless(rgb_frames(name), tmp_path / "fixture.mkv")
    result = ifc_sdk.segment_video(
        path,
        model(name),
        window=spec["window_T"],
        stride=spec["clip_stride"],
        size=None,
        output_size=(info["video"]["height"], info["video"]["width"]),
        progress=False,
    )
    preds = result.predictions()
    assert [p.label for p in preds] == ref["pred_labels"].tolist()
    np.testing.assert_allclose([p.score for p in preds], ref["pred_scores"].numpy(), rtol=0, atol=1e-4)
    assert result.fps == 25 and result.num_frames == 10
    np.testing.assert_allclose(result.timestamps, np.arange(10) / 25)


def test_segment_video_equals_segment_frames_on_real_clip():
    path = require(VIDEOS / "carphone_pristine.mp4")
    m = tiny_model()
    result = ifc_sdk.segment_video(path, m, window=4, stride=2, size=96, progress=False)
    with av.open(str(path)) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    expected = ifc_sdk.segment_frames(m, frames, window=4, stride=2, size=96)
    assert result.num_frames == 120 and result.size == (144, 176)
    assert abs(result.fps - 29.97) < 0.01
    assert [t.frame_masks for t in result.tracks] == [t.frame_masks for t in expected.tracks]
    np.testing.assert_array_equal(
        [t.class_probs for t in result.tracks], [t.class_probs for t in expected.tracks]
    )


def test_stream_yields_every_frame_in_order(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (7, 40, 56, 3), dtype=np.uint8)
    path = write_lossless(frames, tmp_path / "v.mkv")
    stream = ifc_sdk.segment_video(
        path, tiny_model(), window=3, stride=1, size=None, progress=False, stream=True
    )
    indices = [f.index for f in stream]
    assert indices == list(range(7))
    assert stream.finished and len(stream.tracks) >= 0


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"window": 0}, ConfigError),
        ({"window": 2, "stride": 3}, ConfigError),
        ({"window": 3, "precision": "int8"}, ConfigError),
    ],
)
def test_argument_errors_before_decoding(tmp_path, kwargs, error):
    with pytest.raises(error):
        ifc_sdk.segment_video(tmp_path / "does-not-exist.mp4", tiny_model(), progress=False, **kwargs)


def test_missing_file_names_the_file(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(VideoError, match="nope.mp4"):
        ifc_sdk.segment_video(missing, tiny_model(), progress=False)


def test_cli_segment_writes_results_and_overlay(tmp_path, capsys):
    from ifc_sdk.checkpoint import save_pretrained
    from ifc_sdk.cli import main

    frames = np.random.default_rng(1).integers(0, 255, (6, 48, 64, 3), dtype=np.uint8)
    video = write_lossless(frames, tmp_path / "clip.mkv")
    model_dir = save_pretrained(tiny_model(), tmp_path / "model")
    code = main(
        [
            "segment",
            str(video),
            str(tmp_path / "missing.mp4"),
            "--model",
            str(model_dir),
            "--window",
            "3",
            "--size",
            "0",
            "--out",
            str(tmp_path / "out"),
            "--format",
            "ytvis",
            "--format",
            "coco",
            "--overlay",
            "--quiet",
        ]
    )
    assert code == 1  # one of the two sources is missing
    out = tmp_path / "out" / "clip"
    assert json.loads((out / "results.json").read_text()) is not None
    assert (out / "coco_rle.json").is_file()
    with av.open(str(out / "overlay.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 6
    assert not (tmp_path / "out" / "missing").exists()
    assert "missing.mp4" in capsys.readouterr().err


_MEMORY_PROBE = textwrap.dedent("""
    import resource, sys
    import numpy as np, torch
    sys.path.insert(0, {tests!r})
    from tiny import tiny_model
    import ifc_sdk
    torch.set_num_threads(1)
    frames = 0
    for frame in ifc_sdk.segment_video(sys.argv[1], tiny_model(), window=8, stride=4, size=None,
                                       progress=False, stream=True):
        frames += 1
    print(frames, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


def encode_long(path: Path, num_frames: int) -> Path:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.height, stream.width = 32, 32
        stream.pix_fmt = "yuv420p"
        for i in range(num_frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(base[i % 8], format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.mark.slow
def test_peak_memory_flat_in_video_length(tmp_path):
    """Peak RSS for 10,000 frames stays within 1.2x of that for 500 frames (same size and window)."""
    probe = _MEMORY_PROBE.format(tests=str(Path(__file__).parent))
    peaks = {}
    for n in (500, 10_000):
        video = encode_long(tmp_path / f"long{n}.mp4", n)
        out = subprocess.run(
            [sys.executable, "-c", probe, str(video)], capture_output=True, text=True, check=True
        ).stdout.split()
        assert int(out[0]) == n
        peaks[n] = int(out[1])
    assert peaks[10_000] <= 1.2 * peaks[500], peaks


def test_errors_are_ifc_errors():
    assert issubclass(VideoError, IFCError) and issubclass(ConfigError, ValueError)


def _make_videos():
    sys.path.insert(0, str(Path(__file__).parent / "io"))
    import make_videos

    return make_videos


ODD_VIDEOS = {  # name -> (writer kwargs, expected frames, displayed (height, width))
    "odd_444.mp4": (dict(size=(177, 333), pix_fmt="yuv444p", num_frames=3), 3, (177, 333)),
    "ten_bit.mkv": (dict(codec="ffv1", pix_fmt="yuv420p10le", num_frames=3), 3, (48, 64)),
    "gray.mkv": (dict(codec="ffv1", pix_fmt="gray", num_frames=2), 2, (48, 64)),
    "rotated.mp4": (dict(rotation=90, num_frames=3), 3, (64, 48)),
    "one_frame.mp4": (dict(num_frames=1), 1, (48, 64)),
    "part2.avi": (dict(codec="mpeg4", num_frames=4), 4, (48, 64)),
    "vfr.mkv": (dict(codec="ffv1", pts_ms=[0, 40, 130, 135], num_frames=4), 4, (48, 64)),
}


@pytest.mark.parametrize("name", sorted(ODD_VIDEOS))
def test_odd_videos_segment_in_displayed_orientation(tmp_path, name):
    kwargs, frames, size = ODD_VIDEOS[name]
    path = _make_videos().write_video(tmp_path / name, **kwargs)
    result = ifc_sdk.segment_video(path, tiny_model(), window=3, size=None, progress=False)
    assert result.num_frames == frames and result.size == size
    for track in result.tracks:
        assert track.mask_array().shape == (frames, *size)
    if name == "vfr.mkv":
        np.testing.assert_allclose(result.timestamps, [0, 0.04, 0.13, 0.135])


@pytest.mark.parametrize("kind", ["zero_byte", "text", "audio_only", "empty_dir"])
def test_broken_inputs_raise_naming_the_file_and_write_nothing(tmp_path, kind):
    from ifc_sdk.checkpoint import save_pretrained
    from ifc_sdk.cli import main

    path = tmp_path / ("clip.mp4" if kind != "empty_dir" else "frames")
    if kind == "zero_byte":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not a video\n")
    elif kind == "audio_only":
        _make_videos().write_audio_only(path)
    else:
        path.mkdir()
    with pytest.raises(VideoError) as info:
        ifc_sdk.segment_video(path, tiny_model(), window=3, progress=False)
    assert path.name in str(info.value)
    model_dir = save_pretrained(tiny_model(), tmp_path / "model")
    out = tmp_path / "out"
    assert (
        main(["segment", str(path), "--model", str(model_dir), "--out", str(out), "--quiet", "--overlay"])
        == 1
    )
    assert not any(out.rglob("*")) if out.exists() else True


# ---------------------------------------------------------------------------------------------- sources
@pytest.fixture
def one_thread():
    """One intra-op thread for the tiny model: its kernels are too small to share, and idle threads spinning
    on a busy machine cost 10-100x the work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _io_helpers():
    sys.path.insert(0, str(Path(__file__).parent / "io"))
    import streams

    return streams


def _same(a, b) -> None:
    assert a.num_frames == b.num_frames and a.size == b.size
    assert [t.id for t in a.tracks] == [t.id for t in b.tracks]
    assert [t.frame_masks for t in a.tracks] == [t.frame_masks for t in b.tracks]
    np.testing.assert_array_equal([t.class_probs for t in a.tracks], [t.class_probs for t in b.tracks])


def test_every_source_kind_gives_identical_tracks_and_masks(tmp_path, one_thread):
    from PIL import Image

    streams = _io_helpers()
    frames = np.random.default_rng(3).integers(0, 255, (6, 40, 56, 3), dtype=np.uint8)
    write_lossless(frames, tmp_path / "clip.mkv")
    (tmp_path / "ts").mkdir()
    (tmp_path / "ts" / "clip.ts").write_bytes(streams.lossless_ts(frames))
    (tmp_path / "png").mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / "png" / f"{i:05d}.png")
    m = tiny_model()
    run = dict(window=3, stride=1, size=32, progress=False)  # resized in the decoding thread
    expected = ifc_sdk.segment_frames(m, frames, window=3, stride=1, size=32)
    assert expected.tracks and any(t.frame_masks for t in expected.tracks)
    chw = torch.from_numpy(frames).permute(0, 3, 1, 2)
    sources = {
        "file": tmp_path / "clip.mkv",
        "ts file": tmp_path / "ts" / "clip.ts",
        "folder": tmp_path / "png",
        "glob": str(tmp_path / "png" / "*.png"),
        "paths": sorted((tmp_path / "png").iterdir()),
        "array": frames,
        "tensor": chw,
        "list of tensors": list(chw),
        "generator": (f for f in frames),
    }
    for name, source in sources.items():
        result = ifc_sdk.segment_video(source, m, **run)
        _same(result, expected)
        assert (result.source is None) == (name in ("array", "tensor", "list of tensors", "generator")), name
    with streams.tcp_pusher(streams.lossless_ts(frames)) as url:
        _same(ifc_sdk.segment_video(url, m, **run), expected)
    with streams.http_server(tmp_path) as base:
        _same(ifc_sdk.segment_video(f"{base}/clip.mkv", m, **run), expected)


_STDIN_PROBE = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {tests!r})
    import torch
    from tiny import tiny_model
    import ifc_sdk
    torch.set_num_threads(1)
    result = ifc_sdk.segment_video("-", tiny_model(), window=3, size=None, progress=False)
    masks = [{{str(f): r["counts"].decode() for f, r in t.frame_masks.items()}} for t in result.tracks]
    print(json.dumps([result.num_frames, result.source, masks]))
""")


def test_stdin_pipe(tmp_path):
    frames = np.random.default_rng(3).integers(0, 255, (6, 40, 56, 3), dtype=np.uint8)
    data = write_lossless(frames, tmp_path / "clip.mkv").read_bytes()
    probe = _STDIN_PROBE.format(tests=str(Path(__file__).parent))
    out = subprocess.run([sys.executable, "-c", probe], input=data, capture_output=True, check=True).stdout
    num_frames, source, masks = json.loads(out)
    expected = ifc_sdk.segment_frames(tiny_model(), frames, window=3, size=None)
    assert (num_frames, source) == (6, "<stdin>")
    assert masks == [
        {str(f): r["counts"].decode() for f, r in t.frame_masks.items()} for t in expected.tracks
    ]


def test_stream_interrupted_half_way_keeps_the_final_frames(one_thread):
    streams = _io_helpers()
    frames = np.random.default_rng(4).integers(0, 255, (24, 40, 56, 3), dtype=np.uint8)
    with streams.tcp_pusher(streams.lossless_ts(frames), upto=0.5) as url:
        result = ifc_sdk.segment_video(
            url, tiny_model(), window=3, size=None, progress=False, on_damage="ignore"
        )
    n = result.num_frames
    assert 5 <= n < 24 and result.decode_report.frames_decoded == n
    whole = n - result.decode_report.frames_corrupt  # the frame cut by the hang-up may be concealed
    expected = ifc_sdk.segment_frames(tiny_model(), frames[:n], window=3, size=None)
    for got, want in zip(result.tracks, expected.tracks, strict=True):
        assert {f: r for f, r in got.frame_masks.items() if f < whole - 3} == {
            f: r for f, r in want.frame_masks.items() if f < whole - 3
        }


def test_missing_camera_through_segment_video():
    with pytest.raises(VideoError, match="camera 57"):
        ifc_sdk.segment_video(57, tiny_model(), progress=False)


# ---------------------------------------------------------------------------------------------- streaming
def test_stream_result_is_typed_before_the_end_and_equal_after(tmp_path, one_thread):
    frames = np.random.default_rng(5).integers(0, 255, (7, 40, 56, 3), dtype=np.uint8)
    path = write_lossless(frames, tmp_path / "v.mkv")
    m = tiny_model()
    stream = ifc_sdk.segment_video(path, m, window=3, size=None, progress=False, stream=True)
    with pytest.raises(VideoError, match="not iterated yet") as info:
        stream.result()
    assert info.value.path == str(path)
    assert [f.index for f in stream] == list(range(7))
    whole = ifc_sdk.segment_video(path, m, window=3, size=None, progress=False)
    _same(stream.result(), whole)
    assert stream.result().decode_report is stream.decode_report and not stream.decode_report.damaged
    with pytest.raises(VideoError, match="iterated already"):
        next(iter(stream))


def test_break_and_ctrl_c_end_cleanly_keeping_the_final_frames(tmp_path, one_thread):
    import threading

    frames = np.random.default_rng(6).integers(0, 255, (12, 40, 56, 3), dtype=np.uint8)
    path = write_lossless(frames, tmp_path / "v.mkv")
    m = tiny_model()
    whole = ifc_sdk.segment_video(path, m, window=3, size=None, progress=False)
    stream = ifc_sdk.segment_video(path, m, window=3, size=None, progress=False, stream=True)
    for frame in stream:
        if frame.index == 4:
            break
    with pytest.raises(VideoError, match="5 frame\\(s\\) read, stopped early"):
        stream.result()
    with pytest.raises(VideoError, match="iterated already"):  # no silent continuation after a break
        list(stream)
    stream = ifc_sdk.segment_video(path, m, window=3, size=None, progress=False, stream=True)
    with pytest.raises(KeyboardInterrupt):
        for frame in stream:
            if frame.index == 6:
                raise KeyboardInterrupt
    partial = stream.result(partial=True)
    assert partial.num_frames == 7
    for track in partial.tracks:  # frames released before the stop are final: equal to the whole run's
        assert track.frame_masks == {f: r for f, r in whole.tracks[track.id].frame_masks.items() if f < 7}
    assert not any(t.name.startswith("ifc-video-decode") and t.is_alive() for t in threading.enumerate())


def test_endless_generator_streams_in_flat_memory(one_thread):
    import itertools
    import tracemalloc

    base = np.random.default_rng(0).integers(0, 255, (4, 16, 16, 3), dtype=np.uint8)
    endless = (base[i % 4] for i in itertools.count())
    stream = ifc_sdk.segment_video(endless, tiny_model(), window=2, size=None, progress=False, stream=True)
    assert not stream.keep_masks  # a live source keeps nothing by default
    traced = {}
    try:
        for frame in stream:
            if frame.index == 50:
                tracemalloc.start()
            if frame.index in (150, 350):
                traced[frame.index] = tracemalloc.get_traced_memory()[0]
            if frame.index == 350:
                break
    finally:
        tracemalloc.stop()
    # measured: +15 kB over these 200 frames (torch's small objects); keeping the masks adds 450 kB
    assert traced[350] - traced[150] < 40_000, traced
    with pytest.raises(VideoError, match="keep_masks=True"):
        stream.result(partial=True)


# ---------------------------------------------------------------------------------------------- damage, defaults
def test_damaged_video_keeps_frame_indices_and_reports(tmp_path, one_thread):
    sys.path.insert(0, str(Path(__file__).parent / "io"))
    from damaged_videos import write_marked, zero_range

    bad = zero_range(write_marked(tmp_path / "good.mkv", 36), tmp_path / "zeros.mkv", 0.4, 0.5)
    with pytest.warns(UserWarning, match="zeros.mkv: damaged video") as caught:
        result = ifc_sdk.segment_video(bad, tiny_model(), window=3, size=32, progress=False)
    assert len(caught) == 1
    report = result.decode_report
    assert result.num_frames == 36 and report.frames_expected == 36 and len(report.missing) >= 2
    assert sum(t.present.sum() for t in result.tracks) > 0
    for track in result.tracks:  # lost frames have no masks
        assert not track.present[report.missing].any()
    np.testing.assert_allclose(result.timestamps, np.arange(36) / 10, atol=1e-3)
    with pytest.raises(VideoError, match="on_damage='error'") as info:
        ifc_sdk.segment_video(bad, tiny_model(), window=3, size=32, progress=False, on_damage="error")
    assert info.value.path == str(bad)


def test_window_stride_size_default_to_the_models_settings(tmp_path, monkeypatch, one_thread):
    import ifc_sdk.api as api

    seen = []
    real = api.resized_shape
    monkeypatch.setattr(api, "resized_shape", lambda h, w, s, m: seen.append(s) or real(h, w, s, m))
    windows = []
    monkeypatch.setattr(api, "check_window", lambda w, s: windows.append((w, s)) or check_window(w, s))
    video = write_lossless(np.zeros((2, 40, 56, 3), np.uint8), tmp_path / "v.mkv")
    demo = ifc_sdk.load_model("shapes-demo", device="cpu")
    assert api.inference_defaults(demo) == {"window": 7, "stride": 1, "size": 320}
    ifc_sdk.segment_video(video, demo, progress=False)
    ifc_sdk.segment_video(video, demo, window=2, stride=2, size=48, progress=False)  # explicit ones win
    ifc_sdk.segment_video(video, tiny_model(), progress=False)  # no manifest entry: 5, 1, 360
    assert seen == [320, 48, 360] and windows == [(7, 1), (2, 2), (5, 1)]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"size": 0}, "size"),
        ({"size": True}, "size"),
        ({"output_size": (0, 5)}, "output_size"),
        ({"on_damage": "raise"}, "on_damage"),
        ({"timeout": -1}, "timeout"),
    ],
)
def test_more_argument_errors_before_decoding(tmp_path, kwargs, words):
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(ConfigError, match=words):
        ifc_sdk.segment_video(frames, tiny_model(), window=2, progress=False, **kwargs)


def test_frames_above_the_pixel_limit_name_the_override(tmp_path, one_thread):
    frames = np.zeros((2, 64, 64, 3), np.uint8)
    with pytest.raises(VideoError, match="max_pixels=None"):
        ifc_sdk.segment_video(frames, tiny_model(), window=2, progress=False, max_pixels=4000)
    assert (
        ifc_sdk.segment_video(
            frames, tiny_model(), window=2, size=None, progress=False, max_pixels=None
        ).num_frames
        == 2
    )
