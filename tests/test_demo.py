"""The bundled demo model and the offline quick start."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
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


EXAMPLE = Path(ifc_sdk.__file__).parent / "assets" / "shapes_example.mp4"


def test_bundled_example_tracks_lie_on_one_object_each():
    """Issue 16: the overlay of the bundled example showed one track over both stars. The example is generator
    seed 90003 (examples/make_example_video.py), so its exact masks are known: every track must cover at most
    one object substantially (>20% of its pixels over the video), and every object must be found by a track
    (video mask IoU >= 0.5), at the settings `ifc-sdk demo` uses (the manifest's)."""
    from ifc_sdk.api import inference_defaults, load_model, segment_video
    from ifc_sdk.data.synthetic import render_video

    # (N, T, H, W): star, circle, square, star
    truth = render_video(90003, num_frames=60, max_objects=4).masks
    model = load_model("shapes-demo", device="cpu")
    result = segment_video(EXAMPLE, model, **inference_defaults("shapes-demo"), progress=False)
    pred = np.stack([track.mask_array() for track in result.tracks])  # (M, T, H, W)
    inter = np.einsum("mthw,nthw->mn", pred.astype(np.float32), truth.astype(np.float32))
    covered = inter / truth.sum((1, 2, 3))  # (M, N) share of object n's pixels inside track m
    assert ((covered > 0.2).sum(1) <= 1).all(), np.round(covered, 2)
    union = pred.sum((1, 2, 3))[:, None] + truth.sum((1, 2, 3))[None] - inter
    assert ((inter / union).max(0) >= 0.5).all(), np.round(inter / union, 2)


def test_manifest_lists_the_bundled_model():
    names = {info.name: info for info in ifc_sdk.list_models()}
    assert "shapes-demo" in names


def test_demo_settings_are_the_manifests_recommended_ones():
    """The figures in the manifest were measured at its recommended settings, which the CLI and the API use."""
    from ifc_sdk.api import inference_defaults
    from ifc_sdk.weights import get_model_entry

    entry = get_model_entry("shapes-demo")
    assert entry.inference == {"window": 7, "stride": 1, "size": 320}
    assert inference_defaults("shapes-demo") == entry.inference == entry.reported["settings"]
    assert [r["size"] for r in entry.reported["results"]] == [320]
    assert len(entry.reported["seeds"]) == len(entry.reported["AP_per_seed"]) == 5
