"""The bundled demo model and the offline quick start."""

from __future__ import annotations

import av
import pytest

import ifc_sdk
from ifc_sdk.cli import main


def test_demo_command_writes_overlay_and_json(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert str((out / "overlay.mp4").resolve()) in printed
    assert (out / "results.json").stat().st_size > 0 and (out / "coco_rle.json").is_file()
    with av.open(str(out / "overlay.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 60


@pytest.mark.slow
def test_bundled_model_segments_held_out_synthetic_videos(tmp_path):
    """The demo model on videos from a generator seed never used in training (AP >= 0.6 on 20 such videos is
    the release criterion; 6 videos keep the test short)."""
    from ifc_sdk.data.synthetic import generate_dataset
    from ifc_sdk.evaluation import predict_dataset
    from ifc_sdk.evaluation.ytvis import evaluate_ytvis

    annotations = generate_dataset(tmp_path / "data", num_videos=6, seed=777)
    results = predict_dataset(
        tmp_path / "data", tmp_path / "results.json", model="shapes-demo", device="cpu", progress=False
    )
    metrics = evaluate_ytvis(annotations, results)
    assert metrics["AP"] >= 0.5, metrics


def test_manifest_lists_the_bundled_model():
    names = {info.name: info for info in ifc_sdk.list_models()}
    assert "shapes-demo" in names
