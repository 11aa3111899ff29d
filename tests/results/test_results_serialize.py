"""VideoResult to/from dicts and JSON files (exact), and as a pandas table."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from results_sample import CATEGORIES, PROBS, T, dense_masks, sample_result, tight_box_xyxy

from ifc_sdk.errors import ConfigError
from ifc_sdk.results import VideoResult


def _assert_same(a: VideoResult, b: VideoResult) -> None:
    assert (a.num_frames, tuple(a.size), a.source, a.fps) == (b.num_frames, tuple(b.size), b.source, b.fps)
    assert a.timestamps == b.timestamps and list(a.categories) == list(b.categories)
    assert a.score_threshold == b.score_threshold
    assert [t.id for t in a.tracks] == [t.id for t in b.tracks]
    for ta, tb in zip(a.tracks, b.tracks, strict=True):
        assert tb.class_probs.dtype == np.float32
        assert ta.class_probs.tobytes() == tb.class_probs.tobytes()  # bit-exact float32
        assert sorted(ta.frame_masks) == sorted(tb.frame_masks)
        for f, rle in ta.frame_masks.items():
            assert tb.frame_masks[f]["counts"] == rle["counts"] and isinstance(
                tb.frame_masks[f]["counts"], bytes
            )
            assert list(tb.frame_masks[f]["size"]) == list(rle["size"])


def _awkward_result() -> VideoResult:
    """Probabilities that are not short decimals in float32 and timestamps that are not short decimals."""
    result = sample_result(source="videos/clip.mp4", fps=29.97002997, score_threshold=0.05)
    rng = np.random.default_rng(3)
    for track in result.tracks:
        track.class_probs = rng.dirichlet(np.ones(4)).astype(np.float32)
    result.timestamps = [t / 29.97002997 for t in range(T)]
    return result


def test_dict_round_trip_is_exact():
    result = _awkward_result()
    data = result.to_dict()
    json.dumps(data)  # JSON-ready: no bytes, no numpy scalars
    again = VideoResult.from_dict(json.loads(json.dumps(data)))
    _assert_same(result, again)
    for t in range(T):
        np.testing.assert_array_equal(result.frames[t].mask_array(), again.frames[t].mask_array())


def test_json_file_round_trip_is_exact(tmp_path):
    result = _awkward_result()
    path = result.save_json(tmp_path / "sub" / "result.json")
    assert path == tmp_path / "sub" / "result.json" and sorted(p.name for p in path.parent.iterdir()) == [
        "result.json"
    ]
    _assert_same(result, VideoResult.load_json(path))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d.pop("tracks"), "missing field 'tracks'"),
        (lambda d: d.update(format="other"), "format"),
        (lambda d: d.update(version=99), "version 1"),
        (lambda d: d["tracks"][0]["masks"].append([T, "PPYo1"]), "frame 4 outside"),
        (lambda d: d["tracks"][0].update(class_probs="x"), "class_probs"),
        (lambda d: d.update(size=["a", 2]), "malformed"),
    ],
)
def test_malformed_dict_is_a_config_error(change, match):
    data = sample_result().to_dict()
    change(data)
    with pytest.raises(ConfigError, match=match):
        VideoResult.from_dict(data)


def test_load_json_names_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ConfigError, match="bad.json.*not valid JSON"):
        VideoResult.load_json(bad)
    with pytest.raises(ConfigError, match="missing.json"):
        VideoResult.load_json(tmp_path / "missing.json")


def test_to_pandas_one_row_per_track_and_frame():
    pd = pytest.importorskip("pandas")
    result = sample_result()
    table = result.to_pandas()
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == [
        "frame",
        "time",
        "track",
        "label",
        "name",
        "score",
        "x1",
        "y1",
        "x2",
        "y2",
        "area",
    ]
    masks = dense_masks()
    expected = [(t, k) for t in range(T) for k in range(3) if masks[k][t].any()]
    assert list(zip(table.frame, table.track)) == expected
    labels = {0: 0, 1: 1, 2: 2}
    for row in table.itertuples():
        mask = masks[row.track][row.frame]
        assert [row.x1, row.y1, row.x2, row.y2] == tight_box_xyxy(mask)
        assert row.area == mask.sum() and row.label == labels[row.track]
        assert row.name == CATEGORIES[row.label]
        assert row.score == pytest.approx(float(PROBS[row.track][row.label]))
        assert row.time == pytest.approx(0.1 * row.frame)
    assert table.frame.dtype == np.int64 and table.area.dtype == np.int64


def test_to_pandas_time_falls_back_to_fps_and_empty_result_has_columns():
    pytest.importorskip("pandas")
    table = sample_result(timestamps=None, fps=4.0).to_pandas()
    np.testing.assert_allclose(table.time, table.frame / 4.0)
    empty = sample_result()
    empty.tracks = []
    assert len(empty.to_pandas()) == 0 and len(empty.to_pandas().columns) == 11


def test_to_pandas_without_pandas_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas -> ImportError
    with pytest.raises(ImportError, match=r"ifc-sdk\[pandas\]"):
        sample_result().to_pandas()
