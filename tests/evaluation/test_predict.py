"""predict-dataset: a model over every video of a split, sharded under torchrun, resumable, zipped; output paths
checked before any work, a killed run's temporaries swept, nothing else in the folders touched."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import pytest
import torch
from tiny import tiny_model

from ifc_sdk.api import inference_defaults
from ifc_sdk.checkpoint import save_pretrained
from ifc_sdk.cli import main
from ifc_sdk.data.synthetic import generate_dataset
from ifc_sdk.errors import ConfigError, DatasetError, OutputError
from ifc_sdk.evaluation import predict as predict_mod
from ifc_sdk.evaluation.predict import predict_dataset, resolve_split
from ifc_sdk.evaluation.ytvis import STAT_NAMES, evaluate_ytvis

NUM_VIDEOS = 4
FAST = dict(window=3, stride=1, size=64, device="cpu", progress=False)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> types.SimpleNamespace:
    root = tmp_path_factory.mktemp("predict")
    generate_dataset(root / "ds", num_videos=NUM_VIDEOS, seed=7, height=64, width=96, num_frames=(4, 6))
    save_pretrained(tiny_model(), root / "model")
    return types.SimpleNamespace(root=root, data=root / "ds", model=str(root / "model"))


@pytest.fixture(autouse=True)
def one_thread():
    """torchrun gives each process one thread; the single-process run must too for bit-equal scores (and
    one thread is much faster for this tiny model on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _load(path: Path) -> list[dict]:
    return json.loads(path.read_text())


def _sorted(entries: list[dict]) -> list[dict]:
    return sorted(entries, key=lambda e: (e["video_id"], e["category_id"], e["score"]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one(setup, tmp_path):
    one = predict_dataset(setup.data, tmp_path / "one" / "results.json", model=setup.model, **FAST)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        "-m",
        "ifc_sdk.cli",
        "predict-dataset",
        "--data",
        str(setup.data),
        "--model",
        setup.model,
        "--out",
        str(tmp_path / "two" / "results.json"),
        "--window",
        "3",
        "--size",
        "64",
        "--device",
        "cpu",
        "--quiet",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = tmp_path / "two" / "results.json"

    a, b = _load(one), _load(two)
    assert a and {e["video_id"] for e in a} == set(range(1, NUM_VIDEOS + 1))
    assert _sorted(a) == _sorted(b)
    assert one.read_bytes() == two.read_bytes()  # merged in dataset order either way
    # Both ranks wrote their shard: video i+1 belongs to rank i % 2.
    assert sorted(p.name for p in (tmp_path / "two" / "results.json.parts").glob("*.json")) == [
        f"{i}.json" for i in range(1, NUM_VIDEOS + 1)
    ]
    # Multi-class: every track appears once per class above the threshold, masks shared.
    assert len(a) > len({json.dumps(e["segmentations"]) for e in a})
    assert all(e["score"] > 0.01 for e in a)

    with zipfile.ZipFile(tmp_path / "two" / "results.zip") as zf:
        assert zf.namelist() == ["results.json"]
        assert zf.read("results.json") == two.read_bytes()

    metrics = evaluate_ytvis(setup.data / "annotations.json", two)
    assert set(metrics) == set(STAT_NAMES)
    frames = {
        v["id"]: (len(v["file_names"]), v["height"], v["width"])
        for v in json.loads((setup.data / "annotations.json").read_text())["videos"]
    }
    for e in a:
        n, h, w = frames[e["video_id"]]
        assert len(e["segmentations"]) == n and all(s["size"] == [h, w] for s in e["segmentations"])


def test_resume_redoes_only_missing_videos(setup, tmp_path, monkeypatch):
    done: list[int] = []
    original = predict_mod._predict_video

    def counting(model, video, settings, category_ids):
        done.append(video.id)
        return original(model, video, settings, category_ids)

    monkeypatch.setattr(predict_mod, "_predict_video", counting)
    out = tmp_path / "results.json"
    predict_dataset(setup.data, out, model=setup.model, **FAST)
    assert done == [1, 2, 3, 4]
    first = out.read_bytes()

    (tmp_path / "results.json.parts" / "3.json").unlink()
    (tmp_path / "results.json.parts" / "2.json").write_text('{"trunc')  # a torn write is redone too
    done.clear()
    predict_dataset(setup.data, out, model=setup.model, **FAST)
    assert done == [2, 3]
    assert out.read_bytes() == first

    done.clear()
    predict_dataset(setup.data, out, model=setup.model, **FAST)
    assert done == []

    done.clear()
    predict_dataset(setup.data, out, model=setup.model, resume=False, **FAST)
    assert done == [1, 2, 3, 4]

    done.clear()  # other settings: the parts do not apply
    predict_dataset(setup.data, out, model=setup.model, **{**FAST, "window": 2})
    assert done == [1, 2, 3, 4]

    done.clear()
    predict_dataset(setup.data, out, model=setup.model, mask_resize="aligned", **{**FAST, "window": 2})
    assert done == [1, 2, 3, 4]


def test_limit_and_single_class(setup, tmp_path):
    multi = _load(predict_dataset(setup.data, tmp_path / "m.json", model=setup.model, limit=2, **FAST))
    assert {e["video_id"] for e in multi} == {1, 2}
    assert sorted(p.name for p in (tmp_path / "m.json.parts").iterdir()) == ["1.json", "2.json"]

    single = _load(
        predict_dataset(
            setup.data, tmp_path / "s.json", model=setup.model, limit=2, multi_class=False, **FAST
        )
    )
    assert 0 < len(single) < len(multi)
    for s in single:  # the top class of each track
        same = [
            e["score"]
            for e in multi
            if e["video_id"] == s["video_id"] and e["segmentations"] == s["segmentations"]
        ]
        assert s["score"] == max(same)
    assert len({(e["video_id"], json.dumps(e["segmentations"])) for e in single}) == len(single)

    with pytest.raises(ConfigError):
        predict_dataset(setup.data, tmp_path / "x.json", model=setup.model, limit=0, **FAST)
    with pytest.raises(ConfigError):
        predict_dataset(setup.data, tmp_path / "x.zip", model=setup.model, **FAST)
    with pytest.raises(ConfigError, match="mask_resize"):
        predict_dataset(setup.data, tmp_path / "x.json", model=setup.model, mask_resize="crop", **FAST)


def test_cli(setup, tmp_path, capsys):
    out = tmp_path / "R.json"
    code = main(
        [
            "predict-dataset",
            "--data",
            str(setup.data),
            "--model",
            setup.model,
            "--out",
            str(out),
            "--window",
            "3",
            "--size",
            "64",
            "--device",
            "cpu",
            "--limit",
            "1",
            "--quiet",
            "--single-class",
            "--threshold",
            "0.05",
        ]
    )
    assert code == 0
    assert "R.zip" in capsys.readouterr().out
    entries = _load(out)
    assert entries and all(e["video_id"] == 1 and e["score"] > 0.05 for e in entries)
    assert zipfile.ZipFile(tmp_path / "R.zip").namelist() == ["results.json"]
    assert (
        main(
            [
                "eval",
                "--gt",
                str(setup.data / "annotations.json"),
                "--results",
                str(out),
                "--output",
                str(tmp_path / "M.json"),
            ]
        )
        == 0
    )
    assert set(_load(tmp_path / "M.json")) == set(STAT_NAMES)

    assert main(["predict-dataset", "--data", str(tmp_path / "nowhere"), "--model", setup.model]) == 1
    assert "no such dataset folder" in capsys.readouterr().err


def test_split_layouts(setup, tmp_path):
    ann = json.loads((setup.data / "annotations.json").read_text())
    ann.pop("annotations")  # a test split has no ground truth
    y19, y21 = tmp_path / "y19", tmp_path / "y21"
    shutil.copytree(setup.data / "JPEGImages", y19 / "valid" / "JPEGImages")
    (y19 / "valid.json").write_text(json.dumps(ann))
    shutil.copytree(setup.data / "JPEGImages", y21 / "valid" / "JPEGImages")
    (y21 / "valid" / "instances.json").write_text(json.dumps(ann))

    assert resolve_split(y19, "valid") == (y19 / "valid.json", y19 / "valid")
    assert resolve_split(y21, "valid") == (y21 / "valid" / "instances.json", y21 / "valid")
    assert resolve_split(setup.data) == (setup.data / "annotations.json", setup.data)
    with pytest.raises(DatasetError, match="valid.json"):  # no split given: say which exist
        resolve_split(y19)
    with pytest.raises(DatasetError, match="train"):
        resolve_split(y19, "train")

    a = predict_dataset(y19, tmp_path / "a.json", split="valid", model=setup.model, limit=1, **FAST)
    b = predict_dataset(y21, tmp_path / "b.json", split="valid", model=setup.model, limit=1, **FAST)
    assert _load(a) == _load(b) != []


def test_inference_defaults(setup, monkeypatch):
    assert inference_defaults(setup.model) == {"window": 5, "stride": 1, "size": 360}
    assert inference_defaults(tiny_model()) == {"window": 5, "stride": 1, "size": 360}

    import ifc_sdk.weights

    entry = types.SimpleNamespace(inference={"window": 36, "stride": 2}, input={"min_size_test": 480})
    monkeypatch.setattr(ifc_sdk.weights, "get_model_entry", lambda name: entry)
    assert inference_defaults("r50") == {"window": 36, "stride": 2, "size": 480}


def test_output_paths_are_checked_before_any_video(setup, tmp_path, monkeypatch, capsys):
    def never(*args):
        raise AssertionError("a video was processed before the output paths were checked")

    monkeypatch.setattr(predict_mod, "_predict_video", never)
    folder = tmp_path / "results.json"
    folder.mkdir()
    with pytest.raises(OutputError, match="results file is an existing folder"):
        predict_dataset(setup.data, folder, model=setup.model, **FAST)
    (tmp_path / "r.zip").mkdir()
    with pytest.raises(OutputError, match="submission zip is an existing folder"):
        predict_dataset(setup.data, tmp_path / "r.json", model=setup.model, **FAST)
    (tmp_path / "p.json.parts").write_text("mine")
    with pytest.raises(OutputError, match="parts folder is an existing file"):
        predict_dataset(setup.data, tmp_path / "p.json", model=setup.model, **FAST)
    assert (tmp_path / "p.json.parts").read_text() == "mine"

    args = ["predict-dataset", "--data", str(setup.data), "--model", setup.model, "--out", str(folder)]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert (
        err == f"ifc-sdk predict-dataset: error: {folder}: the results file is an existing folder, not a file"
    )


def test_a_killed_runs_temporaries_are_swept_and_nothing_else(setup, tmp_path):
    out = tmp_path / "results.json"
    parts = tmp_path / "results.json.parts"
    # What a run killed during atomic writes leaves (`atomic_path` names), and a user's files beside them.
    stale = [parts / ".1.json.tmp-abcd1234.json", tmp_path / ".results.json.tmp-zz_00000.json"]
    stale.append(tmp_path / ".results.zip.tmp-q1w2e3r4.zip")
    kept = [parts / "notes.txt", parts / "sub" / "2.json", tmp_path / ".other.json.tmp-abcd1234.json"]
    for path in stale + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{")
    predict_dataset(setup.data, out, model=setup.model, limit=1, **FAST)
    assert [p for p in stale if p.exists()] == []
    assert all(p.read_text() == "{" for p in kept)
    assert sorted(p.name for p in parts.iterdir()) == ["1.json", "notes.txt", "sub"]
