"""YouTube-VIS evaluation: agreement with the official evaluator's numbers and its documented quirks."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import YTVIS_EVAL, require
from pycocotools import mask as mask_utils

from ifc_sdk.cli import main
from ifc_sdk.errors import EvaluationError
from ifc_sdk.evaluation.ytvis import (
    STAT_NAMES,
    evaluate_ytvis,
    format_table,
    group_by_pair,
    load_ground_truth,
    load_results,
    track_iou,
)

CASES = sorted(p.name[: -len("_expected.json")] for p in YTVIS_EVAL.glob("*_expected.json"))


def _case(name: str) -> tuple[Path, Path, dict]:
    folder = require(YTVIS_EVAL)
    expected = json.loads((folder / f"{name}_expected.json").read_text())
    return folder / expected["gt_file"], folder / expected["results_file"], expected


def test_fixture_cases_found() -> None:
    require(YTVIS_EVAL)
    assert len(CASES) >= 4


@pytest.mark.parametrize("name", CASES)
def test_stats_match_official(name: str) -> None:
    gt, results, expected = _case(name)
    metrics = evaluate_ytvis(gt, results)
    assert list(metrics) == list(STAT_NAMES) == expected["stat_names"]
    for key, value in expected["stats_by_name"].items():
        assert metrics[key] == pytest.approx(value, abs=1e-6), key
    assert format_table(metrics).splitlines() == expected["official_summary_printout"]


@pytest.mark.parametrize("name", CASES)
def test_iou_matrices_match_official(name: str) -> None:
    gt_path, results_path, expected = _case(name)
    gt = load_ground_truth(gt_path)
    pairs = group_by_pair(gt, load_results(results_path, gt))
    assert sorted(pairs) == sorted((m["video_id"], m["category_id"]) for m in expected["iou_matrices"])
    for entry in expected["iou_matrices"]:
        dts, gts = pairs[entry["video_id"], entry["category_id"]]
        assert [g.id for g in gts] == entry["gt_ids"]
        assert [d.id - 1 for d in dts] == entry["result_indices"]
        want = np.array(entry["iou"], dtype=np.float64).reshape(len(dts), len(gts))
        np.testing.assert_allclose(track_iou(dts, gts), want, rtol=0, atol=1e-11)


@pytest.mark.parametrize("name", CASES)
def test_avg_area_matches_official(name: str) -> None:
    gt_path, results_path, expected = _case(name)
    gt = load_ground_truth(gt_path)
    assert {str(t.id): t.avg_area for t in gt.tracks} == expected["extra_avg_area"]["gt"]
    results = load_results(results_path, gt)
    assert [t.avg_area for t in results] == pytest.approx(expected["extra_avg_area"]["results"], abs=1e-9)


# ---------------------------------------------------------------- hand-built cases

H, W = 20, 30


def _rle(x: int, y: int, w: int, h: int) -> dict:
    """Compressed RLE (str counts) of a w×h box at (x, y) in an H×W frame."""
    mask = np.zeros((H, W), dtype=np.uint8, order="F")
    mask[y : y + h, x : x + w] = 1
    rle = mask_utils.encode(mask)
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def _uncompressed(rle: dict) -> dict:
    """The same mask as uncompressed RLE (list counts, column-major runs starting with zeros)."""
    flat = mask_utils.decode(rle).flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0, *counts]
    return {"size": [H, W], "counts": counts}


def _gt(annotations: list[dict], categories: int = 2) -> dict:
    return {
        "videos": [{"id": 1, "height": H, "width": W, "length": 2, "file_names": ["a.jpg", "b.jpg"]}],
        "categories": [{"id": c, "name": f"c{c}", "supercategory": "x"} for c in range(1, categories + 1)],
        "annotations": annotations,
    }


def _unknown_length(gt: dict) -> dict:
    """The GT without the video's frame count (no ``length``, no ``file_names``): lengths go unchecked, so
    the official ``zip`` pairing of frames can be exercised."""
    for video in gt["videos"]:
        video.pop("length"), video.pop("file_names")
    return gt


def _ann(ann_id: int, box: tuple[int, int, int, int], category: int = 1, iscrowd: int = 0) -> dict:
    rle = _rle(*box)
    area = box[2] * box[3]
    return {
        "id": ann_id,
        "video_id": 1,
        "category_id": category,
        "iscrowd": iscrowd,
        "segmentations": [rle, rle],
        "areas": [area, area],
    }


def _pred(box: tuple[int, int, int, int], score: float, category: int = 1, video: int = 1) -> dict:
    rle = _rle(*box)
    return {"video_id": video, "category_id": category, "score": score, "segmentations": [rle, rle]}


def test_crowd_absorbs_several_predictions() -> None:
    regular, crowd = (0, 0, 5, 5), (10, 0, 20, 20)
    results = [_pred(crowd, 0.9), _pred(crowd, 0.8), _pred((10, 0, 20, 19), 0.7), _pred(regular, 0.6)]
    with_crowd = evaluate_ytvis(_gt([_ann(1, regular), _ann(2, crowd, iscrowd=1)]), results)
    assert with_crowd["AP"] == pytest.approx(1.0)  # the three crowd matches are neither TP nor FP
    without_crowd = evaluate_ytvis(_gt([_ann(1, regular)]), results)
    assert without_crowd["AP"] == pytest.approx(0.25)  # the same predictions as FPs ranked first


def test_crowd_only_category_is_excluded() -> None:
    gt = _gt([_ann(1, (0, 0, 5, 5)), _ann(2, (10, 0, 5, 5), category=2, iscrowd=1)])
    metrics = evaluate_ytvis(gt, [_pred((0, 0, 5, 5), 0.9), _pred((20, 10, 5, 5), 0.8, category=2)])
    assert metrics["AP"] == pytest.approx(1.0)


def test_unknown_video_id_raises() -> None:
    with pytest.raises(EvaluationError, match="42"):
        evaluate_ytvis(_gt([_ann(1, (0, 0, 5, 5))]), [_pred((0, 0, 5, 5), 0.9, video=42)])


def test_unknown_category_is_dropped() -> None:
    gt = _gt([_ann(1, (0, 0, 5, 5)), _ann(2, (10, 0, 8, 5))])
    results = [_pred((0, 0, 5, 5), 0.9), _pred((10, 0, 6, 5), 0.5)]
    base = evaluate_ytvis(gt, results)
    assert evaluate_ytvis(gt, [_pred((3, 3, 9, 9), 0.99, category=7), *results]) == base


def test_uncompressed_and_polygon_gt_accepted() -> None:
    boxes = [(0, 0, 5, 5), (10, 2, 8, 6)]
    gt = _gt([_ann(i + 1, box) for i, box in enumerate(boxes)])
    results = [_pred((0, 0, 5, 4), 0.9), _pred((10, 2, 8, 5), 0.8), _pred((1, 1, 3, 3), 0.7)]
    base = evaluate_ytvis(gt, results)
    uncompressed = copy.deepcopy(gt)
    for ann in uncompressed["annotations"]:
        ann["segmentations"] = [_uncompressed(s) for s in ann["segmentations"]]
    assert isinstance(uncompressed["annotations"][0]["segmentations"][0]["counts"], list)
    assert evaluate_ytvis(uncompressed, results) == base
    polygons = copy.deepcopy(gt)
    for ann, (x, y, w, h) in zip(polygons["annotations"], boxes, strict=True):
        ann["segmentations"] = [[[x, y, x + w, y, x + w, y + h, x, y + h]]] * 2
    gt_p = load_ground_truth(polygons)
    assert [t.areas.tolist() for t in gt_p.tracks] == [[25, 25], [48, 48]]
    assert evaluate_ytvis(polygons, results) == base


def test_gt_id_zero_never_counts() -> None:
    gt_path, results_path, _ = _case("case0_tiny")
    gt = json.loads(gt_path.read_text())
    gt["annotations"][0]["id"] = 0
    assert evaluate_ytvis(gt, results_path)["AP"] == pytest.approx(0.15)


def test_iou_sums_over_frames_and_zip_truncates() -> None:
    gt = load_ground_truth(_unknown_length(_gt([_ann(1, (0, 0, 4, 5))])))  # 20 px in each of 2 frames
    one_frame = {"video_id": 1, "category_id": 1, "score": 1.0, "segmentations": [_rle(0, 0, 2, 5)]}
    absent = {**one_frame, "segmentations": [_rle(0, 0, 2, 5), None]}
    empty = {**one_frame, "segmentations": [_rle(0, 0, 2, 5), _rle(0, 0, 0, 0)]}
    dts = load_results([one_frame, absent, empty], gt)
    ious = track_iou(dts, gt.tracks)
    np.testing.assert_allclose(ious[:, 0], [10 / 20, 10 / 40, 10 / 40])


def _brute_force_iou(dts: list[dict], gts: list[dict]) -> np.ndarray:
    """The official per-frame loop, with masks decoded by pycocotools."""
    out = np.zeros((len(dts), len(gts)))
    for i, d_seq in enumerate(dts):
        for j, g_seq in enumerate(gts):
            inter = union = 0
            for d, g in zip(d_seq, g_seq, strict=False):
                dm = mask_utils.decode(d).astype(bool) if d else np.zeros((H, W), bool)
                gm = mask_utils.decode(g).astype(bool) if g else np.zeros((H, W), bool)
                inter += int((dm & gm).sum())
                union += int((dm | gm).sum())
            out[i, j] = inter / union if union else 0.0
    return out


def test_iou_agrees_with_decoded_masks_on_random_tracks() -> None:
    rng = np.random.default_rng(0)

    def random_track(frames: int) -> list[dict | None]:
        seq: list[dict | None] = []
        for _ in range(frames):
            kind = rng.integers(0, 6)
            if kind == 0:
                seq.append(None)
                continue
            mask = np.zeros((H, W), dtype=np.uint8)
            if kind == 1:
                mask[:] = 1  # starts with foreground: a leading zero-length background run
            elif kind > 2:  # kind 2 stays empty
                mask = (rng.random((H, W)) < rng.uniform(0.05, 0.9)).astype(np.uint8)
                mask[: rng.integers(0, H), : rng.integers(0, W)] = 1
            rle = mask_utils.encode(np.asfortranarray(mask))
            seq.append({"size": [H, W], "counts": rle["counts"].decode("ascii")})
        return seq

    dt_seqs = [random_track(int(rng.integers(1, 6))) for _ in range(7)]
    gt_seqs = [random_track(int(rng.integers(1, 6))) for _ in range(4)]
    gt = load_ground_truth(
        _unknown_length(
            _gt(
                [
                    {"id": j + 1, "video_id": 1, "category_id": 1, "segmentations": seq, "areas": []}
                    for j, seq in enumerate(gt_seqs)
                ]
            )
        )
    )
    dts = load_results(
        [{"video_id": 1, "category_id": 1, "score": 0.5, "segmentations": seq} for seq in dt_seqs], gt
    )
    np.testing.assert_allclose(track_iou(dts, gt.tracks), _brute_force_iou(dt_seqs, gt_seqs), rtol=0, atol=0)


@pytest.mark.parametrize("score", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_score_is_refused_naming_the_video(score: float) -> None:
    gt = _gt([_ann(1, (0, 0, 5, 5))])
    gt["videos"][0]["file_names"] = ["abc123/00000.jpg", "abc123/00005.jpg"]
    with pytest.raises(
        EvaluationError, match=r"results\[1\] \(video 1 \('abc123'\)\): 'score' must be a finite"
    ):
        evaluate_ytvis(gt, [_pred((0, 0, 5, 5), 0.9), _pred((0, 0, 5, 5), score)])


@pytest.mark.parametrize("frames", [1, 3])
def test_segmentations_of_the_wrong_length_are_refused(frames: int) -> None:
    pred = _pred((0, 0, 5, 5), 0.9)
    pred["segmentations"] = [pred["segmentations"][0]] * frames
    with pytest.raises(
        EvaluationError, match=f"results\\[0\\]: video 1 has 2 frames, but 'segmentations' has {frames}"
    ):
        evaluate_ytvis(_gt([_ann(1, (0, 0, 5, 5))]), [pred])
    gt = _gt([_ann(1, (0, 0, 5, 5))])
    gt["videos"][0].pop("length")  # the number of file_names counts then
    with pytest.raises(EvaluationError, match="video 1 has 2 frames"):
        evaluate_ytvis(gt, [pred])
    gt["annotations"][0]["segmentations"] = pred["segmentations"]  # a broken GT file is refused too
    with pytest.raises(EvaluationError, match=r"annotations\[0\]: video 1 has 2 frames"):
        evaluate_ytvis(gt, [])


def test_malformed_rle_raises() -> None:
    pred = _pred((0, 0, 5, 5), 0.9)
    pred["segmentations"][0] = {"size": [H, W], "counts": "0"}
    with pytest.raises(EvaluationError, match="malformed RLE in result #1"):
        evaluate_ytvis(_gt([_ann(1, (0, 0, 5, 5))]), [pred])


def test_empty_results_give_zero_where_gt_exists() -> None:
    metrics = evaluate_ytvis(_gt([_ann(1, (0, 0, 5, 5))]), [])
    assert metrics == {k: (-1.0 if k in ("APm", "APl", "ARm", "ARl") else 0.0) for k in STAT_NAMES}


def test_mask_size_mismatch_raises() -> None:
    pred = _pred((0, 0, 5, 5), 0.9)
    pred["segmentations"][1] = {"size": [H + 1, W], "counts": pred["segmentations"][1]["counts"]}
    with pytest.raises(EvaluationError, match=r"results\[0\], frame 1: mask size"):
        evaluate_ytvis(_gt([_ann(1, (0, 0, 5, 5))]), [pred])


def test_missing_and_malformed_files_raise(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(EvaluationError, match="nope.json"):
        evaluate_ytvis(missing, [])
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(EvaluationError, match="broken.json.*not valid JSON"):
        evaluate_ytvis(broken, [])
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(_gt([])))
    with pytest.raises(EvaluationError, match="broken.json"):
        evaluate_ytvis(gt, broken)
    not_list = tmp_path / "dict.json"
    not_list.write_text("{}")
    with pytest.raises(EvaluationError, match="dict.json: results must be a JSON list"):
        evaluate_ytvis(gt, not_list)


def test_cli_prints_table_and_writes_metrics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt, results, expected = _case("case0_tiny")
    out = tmp_path / "sub" / "metrics.json"
    assert main(["eval", "--gt", str(gt), "--results", str(results), "--output", str(out)]) == 0
    assert capsys.readouterr().out.splitlines() == expected["official_summary_printout"]
    written = json.loads(out.read_text())
    assert list(written) == list(STAT_NAMES)
    assert written == pytest.approx(expected["stats_by_name"], abs=1e-6)


def test_cli_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--gt", str(tmp_path / "missing.json"), "--results", "r.json"]) == 1
    assert "missing.json" in capsys.readouterr().err


def test_cli_output_on_a_folder_is_an_error_before_evaluating(tmp_path: Path, capsys) -> None:
    gt, results, _ = _case("case0_tiny")
    folder = tmp_path / "metrics"
    folder.mkdir()
    assert main(["eval", "--gt", str(gt), "--results", str(results), "--output", str(folder)]) == 1
    captured = capsys.readouterr()
    assert f"{folder}: the metrics file is an existing folder" in captured.err
    assert "Traceback" not in captured.err and "Average Precision" not in captured.out
    assert list(folder.iterdir()) == []
