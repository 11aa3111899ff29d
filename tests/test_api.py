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
from conftest import VIDEOS, require
from reference import meta, model, rgb_frames, tensors
from tiny import tiny_model

import ifc_sdk
from ifc_sdk.errors import ConfigError, IFCError, VideoError


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
