"""The synthetic dataset generator and the ``ifc-sdk synth`` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from ifc_sdk.cli import main as cli_main
from ifc_sdk.data.synthetic import SHAPE_CLASSES, generate_dataset, render_video
from ifc_sdk.errors import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SMALL = {"height": 64, "width": 96}


def test_render_video_is_deterministic_and_well_formed() -> None:
    a = render_video(3, **SMALL, num_frames=(12, 24))
    b = render_video(3, **SMALL, num_frames=(12, 24))
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.masks, b.masks)
    assert np.array_equal(a.classes, b.classes)
    t = len(a.frames)
    assert 12 <= t <= 24
    assert a.frames.shape == (t, 64, 96, 3) and a.frames.dtype == np.uint8
    assert a.masks.shape == (len(a.classes), t, 64, 96) and a.masks.dtype == bool
    assert 1 <= len(a.classes) <= 4 and all(0 <= c < len(SHAPE_CLASSES) for c in a.classes)
    # visible masks never overlap (occlusion by depth order) and every kept object is seen at least once
    assert a.masks.sum(0).max() <= 1
    assert a.masks.reshape(len(a.classes), -1).any(1).all()
    assert not np.array_equal(render_video(4, **SMALL, num_frames=t).frames, a.frames)


def test_objects_enter_and_leave_the_frame() -> None:
    presence = []
    for seed in range(12):
        video = render_video(seed, **SMALL, num_frames=16)
        presence += [m.reshape(16, -1).any(1) for m in video.masks]
    assert any(not p.all() for p in presence), "no object was ever out of view"
    assert any(p.all() for p in presence)


def _ytvis(tmp_path: Path, seed: int = 5, name: str = "ds") -> Path:
    return generate_dataset(tmp_path / name, num_videos=3, seed=seed, **SMALL, num_frames=(12, 16))


def test_ytvis_annotations_match_rendered_masks(tmp_path: Path) -> None:
    path = _ytvis(tmp_path)
    data = json.loads(path.read_text())
    assert [c["name"] for c in data["categories"]] == list(SHAPE_CLASSES)
    assert len(data["videos"]) == 3
    for v, video in enumerate(data["videos"]):
        rendered = render_video((5, v), **SMALL, num_frames=(12, 16))
        assert video["length"] == len(video["file_names"]) == len(rendered.frames)
        for file_name in video["file_names"]:
            assert (path.parent / "JPEGImages" / file_name).is_file()
        annos = [a for a in data["annotations"] if a["video_id"] == video["id"]]
        assert [a["category_id"] - 1 for a in annos] == rendered.classes.tolist()
        for anno, masks in zip(annos, rendered.masks, strict=True):
            for segm, area, bbox, mask in zip(
                anno["segmentations"], anno["areas"], anno["bboxes"], masks, strict=True
            ):
                if not mask.any():
                    assert segm is None and area is None and bbox is None
                    continue
                assert isinstance(segm["counts"], str) and segm["size"] == [64, 96]
                assert np.array_equal(mask_utils.decode(segm).astype(bool), mask)
                assert area == int(mask.sum())
                ys, xs = np.nonzero(mask)
                assert bbox == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


def test_generation_is_byte_identical_for_a_seed(tmp_path: Path) -> None:
    a, b, c = _ytvis(tmp_path, 7, "a"), _ytvis(tmp_path, 7, "b"), _ytvis(tmp_path, 8, "c")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    frames_a = sorted((a.parent / "JPEGImages").rglob("*.jpg"))
    frames_b = sorted((b.parent / "JPEGImages").rglob("*.jpg"))
    assert [p.relative_to(a.parent) for p in frames_a] == [p.relative_to(b.parent) for p in frames_b]
    assert all(p.read_bytes() == q.read_bytes() for p, q in zip(frames_a, frames_b, strict=True))


def test_coco_format(tmp_path: Path) -> None:
    path = generate_dataset(tmp_path / "coco", num_videos=4, seed=1, fmt="coco", **SMALL)
    data = json.loads(path.read_text())
    assert len(data["images"]) == 4
    for image in data["images"]:
        assert (path.parent / "images" / image["file_name"]).is_file()
        rendered = render_video((1, image["id"] - 1), **SMALL, num_frames=1)
        annos = [a for a in data["annotations"] if a["image_id"] == image["id"]]
        assert len(annos) == len(rendered.classes)
        for anno, masks in zip(annos, rendered.masks, strict=True):
            assert np.array_equal(mask_utils.decode(anno["segmentation"]).astype(bool), masks[0])
            assert anno["area"] == int(masks[0].sum()) and anno["iscrowd"] == 0


def test_refuses_non_empty_output_and_leaves_no_temporary_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(ConfigError, match="not an empty folder"):
        generate_dataset(out, num_videos=1, seed=0, **SMALL)
    with pytest.raises(ConfigError):
        generate_dataset(tmp_path / "bad", num_videos=1, seed=0, fmt="avi")

    def fail() -> None:
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        generate_dataset(tmp_path / "half", num_videos=2, seed=0, **SMALL, progress=fail)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    argv = ["synth", "--out", str(out), "--videos", "2", "--seed", "3", "--frames", "5", "--size", "48", "64"]
    assert cli_main(argv) == 0
    assert capsys.readouterr().out.strip().endswith("annotations.json")
    data = json.loads((out / "annotations.json").read_text())
    assert [v["length"] for v in data["videos"]] == [5, 5]
    assert data["videos"][0]["height"] == 48 and data["videos"][0]["width"] == 64
    assert cli_main(["synth", "--out", str(tmp_path / "c"), "--videos", "1", "--format", "coco"]) == 0
    assert (tmp_path / "c" / "images").is_dir()
    assert cli_main(argv) == 1  # the folder is not empty any more
    assert "not an empty folder" in capsys.readouterr().err
