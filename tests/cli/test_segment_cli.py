"""``ifc-sdk segment``: settings from the model, unique output folders, score threshold, summaries, failures.

Most tests replace `segment_video` by a stand-in returning a hand-made result (the CLI's own logic is under
test, in milliseconds); `test_real_run_*` runs the bundled demo model end to end on a short clip.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import av
import numpy as np
import pytest
from results_sample import H, T, W, count_decodes, sample_result, write_lossless

import ifc_sdk.api
from ifc_sdk.cli import main
from ifc_sdk.cli.demo import EXAMPLE_VIDEO
from ifc_sdk.cli.segment import unique_names
from ifc_sdk.errors import VideoError
from ifc_sdk.results import FrameInstances


def _first_frames(result, count: int):
    """``result`` cut to its first ``count`` frames (what a stream stopped there gives)."""
    result.num_frames = count
    result.timestamps = result.timestamps[:count]
    for track in result.tracks:
        track.num_frames = count
        track.frame_masks = {f: rle for f, rle in track.frame_masks.items() if f < count}
    return result


class FakeStream:
    """`VideoStream` stand-in over `sample_result`: frames ``0..T-1`` (with images when frames are kept);
    a source named ``ctrl-c*`` is interrupted after 2 frames."""

    def __init__(self, source: str, keep_frames: bool) -> None:
        self.source, self.keep_frames, self.count = source, keep_frames, 0

    def __iter__(self):
        for index in range(T):
            if Path(self.source).name.startswith("ctrl-c") and index == 2:
                raise KeyboardInterrupt
            self.count += 1
            image = np.full((H, W, 3), 100, np.uint8) if self.keep_frames else None
            yield FrameInstances(index, [], [], image=image)

    def result(self, *, partial: bool = False):
        assert partial == (self.count < T)
        return _first_frames(sample_result(source=self.source), self.count)


@pytest.fixture
def fake_segment(monkeypatch):
    """`segment_video` stand-in: records its arguments; a source named ``bad*`` fails like a broken video."""
    calls = []

    def segment_video(source, model, **kwargs):
        calls.append((str(source), kwargs))
        if Path(source).name.startswith("bad"):
            raise VideoError(source, "expected a video container; found 12 bytes FFmpeg cannot parse")
        assert kwargs["stream"] and kwargs["keep_masks"]
        return FakeStream(str(source), kwargs["keep_frames"])

    monkeypatch.setattr(ifc_sdk.api, "segment_video", segment_video)
    monkeypatch.setattr(ifc_sdk.api, "load_model", lambda name, device=None: f"model {name}")
    return calls


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["segment", *args, "--quiet"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_names_are_unique_and_readable():
    assert unique_names(["clip", "clip", "CLIP", "frames", ".hidden", ""]) == [
        "clip",
        "clip-2",
        "CLIP-3",
        "frames",
        "hidden",
        "video",
    ]


def test_every_source_kind_gets_a_folder(tmp_path, capsys, fake_segment):
    sources = [
        "0",
        "/dev/video2",
        "rtsp://cam.local:554/live/front",
        "https://host/v/walk.mp4?x=1",
        "-",
        "shots/*.jpg",
    ]
    code, stdout, _ = run_cli(capsys, *sources, "--model", "shapes-demo", "--out", str(tmp_path))
    assert code == 0 and [call[0] for call in fake_segment] == sources
    names = ["camera0", "video2", "front", "walk", "stdin", "shots"]
    for source, name in zip(sources, names, strict=True):
        assert f"{source} -> {tmp_path / name}" in stdout
        assert json.loads((tmp_path / name / "summary.json").read_text())["source"] == source


def test_ctrl_c_writes_the_frames_read_and_stops(tmp_path, capsys, fake_segment):
    code, stdout, stderr = run_cli(
        capsys,
        "ctrl-c.mp4",
        "next.mp4",
        "--model",
        "shapes-demo",
        "--out",
        str(tmp_path),
        "--format",
        "coco",
        "--overlay",
    )
    assert code == 130 and [call[0] for call in fake_segment] == ["ctrl-c.mp4"]
    summary = json.loads((tmp_path / "ctrl-c" / "summary.json").read_text())
    assert summary["interrupted"] and summary["frames"] == 2
    coco = json.loads((tmp_path / "ctrl-c" / "coco_rle.json").read_text())
    assert coco["num_frames"] == 2 and len(coco["frames"]) == 2
    with av.open(str(tmp_path / "ctrl-c" / "overlay.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 2
    assert "interrupted: the frames read until Ctrl-C are written" in stdout
    assert "1/2 video(s) segmented" in stdout and stderr.strip().endswith("interrupted")
    assert not (tmp_path / "next").exists()


def test_same_stem_goes_to_distinct_folders_and_says_where(tmp_path, capsys, fake_segment):
    out = tmp_path / "D"
    code, stdout, _ = run_cli(capsys, "a/clip.mp4", "b/clip.mp4", "--model", "shapes-demo", "--out", str(out))
    assert code == 0
    assert f"a/clip.mp4 -> {out / 'clip'}" in stdout and f"b/clip.mp4 -> {out / 'clip-2'}" in stdout
    assert json.loads((out / "clip" / "summary.json").read_text())["source"] == "a/clip.mp4"
    assert json.loads((out / "clip-2" / "summary.json").read_text())["source"] == "b/clip.mp4"
    assert sorted(p.name for p in out.iterdir()) == ["clip", "clip-2"]


def test_inference_settings_come_from_the_models_manifest_entry(tmp_path, capsys, fake_segment):
    run_cli(capsys, "v.mp4", "--model", "shapes-demo", "--out", str(tmp_path))
    assert {k: fake_segment[0][1][k] for k in ("window", "stride", "size")} == {
        "window": 7,
        "stride": 1,
        "size": 320,
    }
    assert fake_segment[0][1]["mask_resize"] == "reference"
    run_cli(
        capsys, "v.mp4", "--model", "shapes-demo", "--out", str(tmp_path), "--size", "0", "--window", "3",
        "--mask-resize", "aligned",
    )  # fmt: skip
    assert {k: fake_segment[1][1][k] for k in ("window", "stride", "size", "mask_resize")} == {
        "window": 3,
        "stride": 1,
        "size": None,
        "mask_resize": "aligned",
    }
    settings = json.loads((tmp_path / "v" / "summary.json").read_text())["settings"]
    assert settings == {
        "window": 3,
        "stride": 1,
        "size": None,
        "precision": "fp32",
        "mask_resize": "aligned",
        "score_threshold": 0.0,
    }


def test_score_threshold_applies_to_every_output_and_is_recorded(tmp_path, capsys, fake_segment):
    code, stdout, _ = run_cli(
        capsys, "clip.mp4", "--model", "shapes-demo", "--out", str(tmp_path), "--score-threshold", "0.5",
        "--format", "ytvis", "--format", "coco", "--format", "mots", "--format", "png", "--overlay",
    )  # fmt: skip
    assert code == 0
    folder = tmp_path / "clip"
    # sample tracks score 0.6 (id 0), 0.85 (id 1), 0.4 (id 2): track 2 is dropped everywhere
    ytvis = json.loads((folder / "results.json").read_text())
    assert [(e["category_id"], round(e["score"], 2)) for e in ytvis] == [(1, 0.6), (2, 0.85)]
    coco = json.loads((folder / "coco_rle.json").read_text())
    assert coco["score_threshold"] == 0.5
    assert {i["track_id"] for f in coco["frames"] for i in f["instances"]} == {0, 1}
    assert {line.split()[1] for line in (folder / "mots.txt").read_text().splitlines()} == {"0", "1"}
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["settings"]["score_threshold"] == 0.5 and [t["id"] for t in summary["tracks"]] == [1, 0]
    from PIL import Image

    values = {
        int(v) for png in sorted((folder / "masks").iterdir()) for v in np.unique(np.asarray(Image.open(png)))
    }
    assert values == {0, 1, 2}  # track ids 0 and 1 (+1), never 3
    assert (folder / "overlay.mp4").stat().st_size > 0
    assert "2 tracks (bike 1, person 1)" in stdout


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan"])
def test_bad_score_threshold_is_refused(tmp_path, capsys, fake_segment, value):
    code, _, stderr = run_cli(
        capsys, "clip.mp4", "--model", "shapes-demo", "--out", str(tmp_path), "--score-threshold", value
    )
    assert code == 1 and "--score-threshold must be a probability in [0, 1]" in stderr and not fake_segment


def test_summary_line_per_video(tmp_path, capsys, fake_segment):
    code, stdout, _ = run_cli(
        capsys, "clip.mp4", "--model", "shapes-demo", "--out", str(tmp_path), "--format", "coco"
    )
    assert code == 0
    line = next(line for line in stdout.splitlines() if line.startswith("clip.mp4:"))
    assert line.startswith(f"clip.mp4: {T} frames {W}x{H}, 3 tracks (bike 1, person 1, dog 1), ")
    assert line.endswith(" FPS)")
    assert f"  coco: {tmp_path / 'clip' / 'coco_rle.json'}" in stdout
    assert f"  summary: {tmp_path / 'clip' / 'summary.json'}" in stdout


def test_one_failing_video_does_not_stop_the_others(tmp_path, capsys, fake_segment):
    code, stdout, stderr = run_cli(
        capsys, "one.mp4", "bad.mp4", "two.mp4", "--model", "shapes-demo", "--out", str(tmp_path)
    )
    assert code == 1
    assert [call[0] for call in fake_segment] == ["one.mp4", "bad.mp4", "two.mp4"]
    assert (tmp_path / "one" / "results.json").is_file() and (tmp_path / "two" / "results.json").is_file()
    assert not (tmp_path / "bad").exists()
    assert "2/3 video(s) segmented" in stdout
    assert "1 of 3 failed:\n  bad.mp4: bad.mp4: expected a video container" in stderr
    assert "Traceback" not in stderr


def test_out_on_a_file_is_an_error_before_any_work(tmp_path, capsys, fake_segment):
    target = tmp_path / "taken"
    target.write_text("user data")
    code, _, stderr = run_cli(capsys, "clip.mp4", "--model", "shapes-demo", "--out", str(target))
    assert code == 1 and not fake_segment
    assert (
        stderr.strip()
        == f"ifc-sdk segment: error: {target}: the output folder is an existing file, not a folder"
    )
    assert target.read_text() == "user data"


def test_a_file_where_a_video_folder_goes_fails_that_video_only(tmp_path, capsys, fake_segment):
    (tmp_path / "one").write_text("user data")
    code, _, stderr = run_cli(capsys, "one.mp4", "two.mp4", "--model", "shapes-demo", "--out", str(tmp_path))
    assert code == 1 and [call[0] for call in fake_segment] == ["two.mp4"]
    assert f"one.mp4: {tmp_path / 'one'}: the output folder for this video is an existing file" in stderr
    assert (tmp_path / "one").read_text() == "user data" and (tmp_path / "two" / "results.json").is_file()


def test_read_only_out_is_an_error_before_any_work(tmp_path, capsys, fake_segment, monkeypatch):
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    code, _, stderr = run_cli(capsys, "clip.mp4", "--model", "shapes-demo", "--out", str(tmp_path))
    assert code == 1 and not fake_segment and "Traceback" not in stderr
    assert stderr.strip() == (
        f"ifc-sdk segment: error: {tmp_path}: cannot write into the output folder: read-only file system"
    )


def test_disk_full_is_reported_per_video_and_leaves_earlier_outputs(
    tmp_path, capsys, fake_segment, monkeypatch
):
    run_cli(capsys, "clip.mp4", "--model", "shapes-demo", "--out", str(tmp_path), "--format", "coco")
    folder = tmp_path / "clip"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    (folder / "notes.txt").write_text("mine")
    real_replace = os.replace

    def full(src, dst):
        if Path(dst).name == "coco_rle.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full)
    code, _, stderr = run_cli(
        capsys, "clip.mp4", "--model", "shapes-demo", "--out", str(tmp_path), "--format", "coco"
    )
    assert code == 1 and "Traceback" not in stderr
    assert "coco_rle.json: cannot write: no space left on the device (disk full)" in stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "notes.txt"} == before
    assert (folder / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip"]  # no staging folder left behind


def test_leftovers_of_a_killed_run_are_swept_and_user_files_kept(tmp_path, capsys, fake_segment):
    folder = tmp_path / "clip"
    (folder / ".masks.tmp-k1l2m3n4").mkdir(parents=True)
    (folder / ".masks.tmp-k1l2m3n4" / "00000.png").write_bytes(b"x")
    (folder / ".overlay.mp4.tmp-abcd1234.mp4").write_bytes(b"half")
    (folder / ".results.json.tmp-x1x2x3x4.json").write_text("[")
    (tmp_path / ".clip.staging-zz00zz00").mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / ".hidden-user-file").write_text("mine too")
    code, _, _ = run_cli(
        capsys, "clip.mp4", "--model", "shapes-demo", "--out", str(tmp_path), "--format", "png", "--overlay"
    )
    assert code == 0
    kept = [".hidden-user-file", "masks", "notes.txt", "overlay.mp4", "summary.json"]
    assert sorted(p.name for p in folder.iterdir()) == kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip"]


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"ifc-sdk {ifc_sdk.__version__}"


# ---------------------------------------------------------------------------------------------- real run
def _short_clip(path: Path, start: int, count: int) -> Path:
    """``count`` frames of the bundled example from ``start``, losslessly (FFV1), so decoding is exact."""
    with av.open(str(EXAMPLE_VIDEO)) as src:
        frames = [
            f.to_ndarray(format="rgb24")
            for i, f in enumerate(src.decode(video=0))
            if start <= i < start + count
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_lossless(frames, path)


@pytest.mark.slow
def test_real_run_decodes_each_video_once_and_draws_the_overlay_from_kept_frames(
    tmp_path, capsys, monkeypatch
):
    from ifc_sdk.io import video

    a = _short_clip(tmp_path / "a" / "clip.mkv", 0, 5)
    b = _short_clip(tmp_path / "b" / "clip.mkv", 30, 5)
    decodes = count_decodes(monkeypatch)
    out = tmp_path / "D"
    code, stdout, _ = run_cli(
        capsys, str(a), str(b), "--model", "shapes-demo", "--out", str(out), "--overlay", "--device", "cpu"
    )
    assert code == 0
    assert decodes == [str(a), str(b)]  # the overlay reuses the kept frames
    assert f"{a} -> {out / 'clip'}" in stdout and f"{b} -> {out / 'clip-2'}" in stdout
    for name in ("clip", "clip-2"):
        summary = json.loads((out / name / "summary.json").read_text())
        assert summary["settings"]["size"] == 320 and summary["frames"] == 5 and summary["tracks"]
        with video.open_video(out / name / "overlay.mp4") as reader:
            assert len(list(reader)) == 5


def test_real_glob_source_and_a_model_folder(tmp_path, capsys):
    from PIL import Image
    from tiny import tiny_model

    from ifc_sdk.checkpoint import save_pretrained

    model_dir = save_pretrained(tiny_model(), tmp_path / "model")
    frames = np.random.default_rng(0).integers(0, 255, (4, 32, 40, 3), dtype=np.uint8)
    (tmp_path / "shots").mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / "shots" / f"{i}.png")
    (tmp_path / "shots" / "notes.txt").write_text("not a frame")
    pattern = str(tmp_path / "shots" / "*.png")
    code, stdout, stderr = run_cli(
        capsys, pattern, "--model", str(model_dir), "--size", "0", "--window", "2", "--out", str(tmp_path / "D"),
        "--device", "cpu", "--format", "coco",
    )  # fmt: skip
    assert code == 0, stderr
    assert f"{pattern} -> {tmp_path / 'D' / 'shots'}" in stdout
    coco = json.loads((tmp_path / "D" / "shots" / "coco_rle.json").read_text())
    assert coco["num_frames"] == 4 and coco["size"] == [32, 40]
    summary = json.loads((tmp_path / "D" / "shots" / "summary.json").read_text())
    assert summary["settings"] == {
        "window": 2,
        "stride": 1,
        "size": None,
        "precision": "fp32",
        "mask_resize": "reference",
        "score_threshold": 0.0,
    }
