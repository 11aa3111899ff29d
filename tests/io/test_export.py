"""Exports of a VideoResult (YouTube-VIS, COCO RLE, MOTS, PNG) and the overlay video: round trips, atomicity."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from ifc_sdk.errors import ConfigError, OutputError
from ifc_sdk.io.export import (
    export,
    save_coco_rle_json,
    save_mots_txt,
    save_png_masks,
    save_ytvis_json,
    to_ytvis_results,
)
from ifc_sdk.io.overlay import render_frame, track_color, write_overlay
from ifc_sdk.io.video import open_video
from ifc_sdk.results import Track, VideoResult, encode_masks

# pycocotools with numpy 2 warns on every decode; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

H, W, T = 20, 30, 4
CATEGORIES = ["person", "bike", "dog"]


def _masks() -> dict[int, np.ndarray]:
    m = {k: np.zeros((T, H, W), bool) for k in range(3)}
    for t in range(T):
        m[0][t, 2:10, 3 + t : 12 + t] = True  # moving box
        m[1][t, 6:16, 8:20] = True  # overlaps track 0
    m[2][1, 15:19, 22:29] = True  # present in frame 1 and 3 only
    m[2][3, 0:3, 0:5] = True
    return m


def _track(track_id: int, probs: np.ndarray, masks: np.ndarray) -> Track:
    """A Track from dense (T, H, W) masks, for either layout of `Track` (dense list or sparse per-frame dict)."""
    rles = encode_masks(masks)
    names = {f.name for f in dataclasses.fields(Track)}
    if "frame_masks" in names:
        sparse = {t: rle for t, rle in enumerate(rles) if masks[t].any()}
        return Track(
            track_id, probs, sparse, num_frames=len(rles), size=masks.shape[1:], categories=CATEGORIES
        )
    return Track(track_id, probs, rles, categories=CATEGORIES)


def _result() -> VideoResult:
    masks = _masks()
    probs = {
        0: np.array([0.6, 0.3, 0.005, 0.095], np.float32),  # two classes above 0.01
        1: np.array([0.05, 0.85, 0.0, 0.1], np.float32),  # higher score than track 0: wins overlaps
        2: np.array([0.0, 0.0, 0.4, 0.6], np.float32),
    }
    tracks = [_track(k, probs[k], masks[k]) for k in range(3)]
    return VideoResult(
        tracks,
        num_frames=T,
        size=(H, W),
        source="clip.mp4",
        fps=10.0,
        timestamps=[0.1 * t for t in range(T)],
        categories=CATEGORIES,
    )


def _winner_map() -> np.ndarray:
    """Expected (T, H, W) id map: track id + 1, higher score on top (track 1 > track 0 > track 2)."""
    m = _masks()
    out = np.zeros((T, H, W), np.int32)
    for k in (2, 0, 1):  # ascending score
        out[m[k]] = k + 1
    return out


def _decode(rle: dict) -> np.ndarray:
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(bool)


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---------------------------------------------------------------------------------------------- ytvis
def test_ytvis_round_trip(tmp_path):
    result = _result()
    entries = to_ytvis_results(result, video_id=7)
    # multi_class: track 0 yields labels 0 and 1, track 1 labels 0 and 1, track 2 label 2
    assert [(e["category_id"], round(e["score"], 3)) for e in entries] == [
        (1, 0.6),
        (2, 0.3),
        (1, 0.05),
        (2, 0.85),
        (3, 0.4),
    ]
    path = save_ytvis_json(entries, tmp_path / "out" / "results.json")
    loaded = json.loads(path.read_text())
    assert loaded == entries
    masks = _masks()
    track_of_entry = [0, 0, 1, 1, 2]
    for entry, k in zip(loaded, track_of_entry, strict=True):
        assert entry["video_id"] == 7
        assert len(entry["segmentations"]) == T
        for t, seg in enumerate(entry["segmentations"]):
            assert isinstance(seg["counts"], str) and seg["size"] == [H, W]
            np.testing.assert_array_equal(_decode(seg), masks[k][t])


def test_ytvis_single_class_threshold_and_category_ids():
    result = _result()
    entries = to_ytvis_results(result, 1, multi_class=False, threshold=0.5, category_ids=[10, 20, 30])
    assert [(e["category_id"], e["score"]) for e in entries] == [
        (10, pytest.approx(0.6)),
        (20, pytest.approx(0.85)),
    ]
    with pytest.raises(ConfigError):
        to_ytvis_results(result, 1, category_ids={0: 5})


# ---------------------------------------------------------------------------------------------- coco
def test_coco_rle_round_trip(tmp_path):
    result = _result()
    doc = json.loads(save_coco_rle_json(result, tmp_path / "coco.json").read_text())
    assert doc["size"] == [H, W] and doc["num_frames"] == T and doc["categories"] == CATEGORIES
    masks = _masks()
    for t, frame in enumerate(doc["frames"]):
        assert frame["frame"] == t and frame["timestamp"] == pytest.approx(0.1 * t)
        ids = [inst["track_id"] for inst in frame["instances"]]
        assert ids == [k for k in range(3) if masks[k][t].any()]
        for inst in frame["instances"]:
            k = inst["track_id"]
            mask = _decode(inst["segmentation"])
            np.testing.assert_array_equal(mask, masks[k][t])
            ys, xs = np.nonzero(mask)
            assert inst["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert inst["area"] == mask.sum()
            assert inst["label"] == result.tracks[k].label
            assert inst["label_name"] == CATEGORIES[inst["label"]]
            assert inst["score"] == pytest.approx(result.tracks[k].score)


# ---------------------------------------------------------------------------------------------- mots
def test_mots_round_trip(tmp_path):
    lines = save_mots_txt(_result(), tmp_path / "mots.txt").read_text().splitlines()
    expected = _winner_map()
    seen: dict[int, np.ndarray] = {}
    for line in lines:
        fields = line.split(" ")
        assert len(fields) == 6
        frame, track, cls, h, w = (int(v) for v in fields[:5])
        assert (h, w) == (H, W)
        assert cls == {0: 1, 1: 2, 2: 3}[track]  # top label + 1
        mask = mask_utils.decode({"size": [h, w], "counts": fields[5].encode("ascii")}).astype(bool)
        assert mask.any()
        np.testing.assert_array_equal(mask, expected[frame] == track + 1)
        union = seen.setdefault(frame, np.zeros((H, W), bool))
        assert not (union & mask).any()  # MOTS: masks must not overlap
        union |= mask
    # one line per non-empty (resolved) mask
    assert len(lines) == sum(len(np.unique(expected[t][expected[t] > 0])) for t in range(T))
    for t in range(T):
        np.testing.assert_array_equal(seen.get(t, np.zeros((H, W), bool)), expected[t] > 0)


# ---------------------------------------------------------------------------------------------- png
def test_png_round_trip(tmp_path):
    folder = save_png_masks(_result(), tmp_path / "masks")
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == [f"{t:05d}.png" for t in range(T)]
    expected = _winner_map()
    for t, file in enumerate(files):
        with Image.open(file) as img:
            assert img.mode == "P"
            values = np.asarray(img)
            palette = img.getpalette()
        np.testing.assert_array_equal(values, expected[t])
        assert palette[:3] == [0, 0, 0]
        assert tuple(palette[3 * 2 : 3 * 2 + 3]) == track_color(1)  # value 2 = track 1
    assert _listing(tmp_path) == ["masks"]


def test_png_replaces_existing_folder_and_rejects_too_many_tracks(tmp_path):
    folder = tmp_path / "masks"
    folder.mkdir()
    (folder / "stale.png").write_bytes(b"old")
    save_png_masks(_result(), folder)
    assert "stale.png" not in _listing(folder) and len(_listing(folder)) == T
    many = _result()
    many.tracks[2].id = 300
    with pytest.raises(ConfigError, match="255"):
        save_png_masks(many, tmp_path / "many")
    assert not (tmp_path / "many").exists()


# ---------------------------------------------------------------------------------------------- export
def test_export_dispatches_every_format(tmp_path):
    written = export(_result(), tmp_path / "out", ["ytvis", "coco", "mots", "png"])
    assert set(written) == {"ytvis", "coco", "mots", "png"}
    assert all(p.exists() for p in written.values())
    assert written["png"].is_dir() and len(list(written["png"].iterdir())) == T
    assert json.loads(written["ytvis"].read_text())[0]["video_id"] == 1


def test_export_rejects_unknown_format_before_writing(tmp_path):
    with pytest.raises(ConfigError, match="gif"):
        export(_result(), tmp_path / "out", ["ytvis", "gif"])
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------- atomicity
def test_failing_json_write_leaves_no_file_and_keeps_old_one(tmp_path):
    target = tmp_path / "results.json"
    with pytest.raises(TypeError):
        save_ytvis_json([{"video_id": 1, "oops": object()}], target)
    assert _listing(tmp_path) == []
    target.write_text("old")
    with pytest.raises(TypeError):
        save_ytvis_json([{"video_id": 1, "oops": object()}], target)
    assert target.read_text() == "old" and _listing(tmp_path) == ["results.json"]


def test_failing_mots_write_leaves_no_file(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", boom)
    with pytest.raises(OSError, match="disk full"):
        save_mots_txt(_result(), tmp_path / "mots.txt")
    assert _listing(tmp_path) == []


def test_failing_png_write_leaves_no_folder(tmp_path, monkeypatch):
    real_save = Image.Image.save
    calls = {"n": 0}

    def flaky_save(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", flaky_save)
    with pytest.raises(OSError, match="disk full"):
        save_png_masks(_result(), tmp_path / "masks")
    assert _listing(tmp_path) == []


# ---------------------------------------------------------------------------------------------- overlay
def _gray_frames(n: int, h: int, w: int):
    return [np.full((h, w, 3), 128, np.uint8) for _ in range(n)]


def test_overlay_decodes_with_frame_count_size_and_rate(tmp_path):
    result = _result()
    big_h, big_w = 4 * H, 4 * W  # frames larger than the masks: masks are resized (nearest)
    path = write_overlay(result, _gray_frames(T, big_h, big_w), tmp_path / "overlay.mp4", fps=29.97)
    with open_video(path) as reader:
        frames = list(reader)
    assert reader.size == (big_h, big_w) and len(frames) == T
    assert reader.fps == pytest.approx(29.97, abs=0.01)
    # inside track 1's mask (not covered by label boxes) the colour moves toward track 1's colour
    color = np.array(track_color(1), np.float32)
    pixel = frames[0].image[14 * 4, 18 * 4].astype(np.float32)
    expected = 0.5 * 128 + 0.5 * color
    assert np.abs(pixel - expected).max() < 25
    # far from every mask the frame is unchanged
    assert np.abs(frames[0].image[-3, -3].astype(int) - 128).max() < 10
    assert _listing(tmp_path) == ["overlay.mp4"]


def test_overlay_odd_size_mpeg4_and_frames_from_reader(tmp_path):
    result = _result()
    src = write_overlay(result, _gray_frames(T, 21, 31), tmp_path / "odd.mp4", fps=10, codec="mpeg4")
    with open_video(src) as reader:
        frames = list(reader)
        assert reader.size == (22, 32)  # padded to even
    assert len(frames) == T
    again = write_overlay(result, frames, tmp_path / "again.avi", fps=None, codec="mpeg4")  # Frame objects
    with open_video(again) as reader:
        assert len(list(reader)) == T and reader.fps == pytest.approx(10.0)


def test_failing_overlay_leaves_no_file(tmp_path):
    result = _result()

    def frames():
        yield np.zeros((H, W, 3), np.uint8)
        yield np.zeros((H, W, 3), np.uint8)
        raise RuntimeError("camera unplugged")

    with pytest.raises(RuntimeError, match="unplugged"):
        write_overlay(result, frames(), tmp_path / "overlay.mp4", fps=10)
    assert _listing(tmp_path) == []
    with pytest.raises(ConfigError, match="at most"):
        write_overlay(result, _gray_frames(T + 1, H, W), tmp_path / "overlay.mp4", fps=10)
    assert _listing(tmp_path) == []


def test_render_frame_draws_labels_and_keeps_input():
    result = _result()
    image = np.full((H * 10, W * 10, 3), 50, np.uint8)
    out = render_frame(image, result, 1)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert (image == 50).all()  # input untouched
    assert (out != 50).any(axis=-1).sum() > 0
    assert ((out > 230).all(axis=-1) | (out < 25).all(axis=-1)).any()  # label text, white or black


# ---------------------------------------------------------------------------------------------- user files
def test_export_sweeps_only_its_own_stale_temporaries(tmp_path):
    out = tmp_path / "out"
    (out / ".masks.tmp-a1b2c3d4").mkdir(parents=True)
    (out / ".masks.staging-c3_9x0ab").mkdir()
    (out / ".results.json.tmp-x9y8z7w6.json").write_text("[")
    (out / ".mots.txt.tmp-zzzzzzzz.txt").write_text("1 2")
    (out / "notes.txt").write_text("mine")
    (out / ".results.json.backup").write_text("mine too")  # not an SDK temporary: kept
    written = export(_result(), out, ["ytvis", "png"])
    assert _listing(out) == [
        ".mots.txt.tmp-zzzzzzzz.txt",
        ".results.json.backup",
        "masks",
        "notes.txt",
        "results.json",
    ]
    assert set(written) == {"ytvis", "png"}
    assert (out / "notes.txt").read_text() == "mine"


def test_export_into_a_file_is_an_output_error(tmp_path):
    target = tmp_path / "taken"
    target.write_text("user data")
    with pytest.raises(OutputError, match="taken: the output folder is an existing file"):
        export(_result(), target, ["ytvis"])
    assert target.read_text() == "user data"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "masks").write_text("a file where the PNG folder goes")
    with pytest.raises(OutputError, match="masks: expected a folder for the PNG masks, found a file"):
        export(_result(), tmp_path / "out", ["png"])


def test_filtered_result_is_written_the_same_way_in_every_format(tmp_path):
    kept = _result().filter(0.5)  # drops track 2 (score 0.4)
    written = export(kept, tmp_path, ["ytvis", "coco", "mots", "png"])
    coco = json.loads(written["coco"].read_text())
    assert coco["score_threshold"] == 0.5
    assert {i["track_id"] for f in coco["frames"] for i in f["instances"]} == {0, 1}
    assert [round(e["score"], 2) for e in json.loads(written["ytvis"].read_text())] == [0.6, 0.85]
    assert {int(line.split()[1]) for line in written["mots"].read_text().splitlines()} == {0, 1}
    values = set()
    for png in sorted(written["png"].iterdir()):
        with Image.open(png) as img:
            values |= set(np.unique(np.asarray(img)).tolist())
    assert values == {0, 1, 2}
