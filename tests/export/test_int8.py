"""int8 exports of the trained demo model at its recommended settings: quantized graphs, calibrated on other
synthetic videos of its world, keep its tracks on the bundled example and its AP on unseen synthetic videos
(the full measurement, 5 seeds x 20 videos and the real clips: benchmarks/runtimes.py --only-demo-accuracy)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from exports import mask_iou
from scipy.optimize import linear_sum_assignment

import ifc_sdk
from ifc_sdk.api import inference_defaults
from ifc_sdk.data.synthetic import generate_dataset
from ifc_sdk.evaluation.predict import predict_dataset
from ifc_sdk.evaluation.ytvis import evaluate_ytvis
from ifc_sdk.export.check import CHECK_CLIP

EVAL_SEED = 271828  # the first of the demo's reported seeds (weights_manifest/shapes-demo.json)


def matched_tracks(reference, other) -> dict[int, tuple[int, float]]:
    """Tracks of ``other`` paired with ``reference``'s by Hungarian matching on video mask IoU, pairs of IoU
    >= 0.5 only: reference track id -> (the paired track's label, IoU)."""
    iou = np.array([[mask_iou(a.mask_array(), b.mask_array()) for b in other] for a in reference])
    rows, cols = linear_sum_assignment(iou, maximize=True)
    return {reference[r].id: (other[c].label, iou[r, c]) for r, c in zip(rows, cols) if iou[r, c] >= 0.5}


@pytest.fixture(scope="module")
def demo():
    return ifc_sdk.load_model("shapes-demo", device="cpu")


@pytest.fixture(scope="module")
def settings(demo):
    """The demo's recommended window, stride and size (320)."""
    return inference_defaults(demo)


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    """Three synthetic videos of the demo's world, none of them evaluated, as a folder of frame folders."""
    data = tmp_path_factory.mktemp("calib") / "data"
    generate_dataset(data, num_videos=3, seed=4242)
    return data / "JPEGImages"


@pytest.fixture(scope="module")
def unseen(tmp_path_factory):
    """5 videos of an unseen generator seed, as `ifc-sdk synth` makes them."""
    data = tmp_path_factory.mktemp("unseen") / "data"
    generate_dataset(data, num_videos=5, seed=EVAL_SEED)
    return data


@pytest.mark.slow
@pytest.mark.parametrize(("fmt", "quantized_op"), [("onnx", "QuantizeLinear"), ("openvino", "FakeQuantize")])
def test_int8_keeps_the_demo_models_tracks_and_ap(tmp_path, demo, settings, calib, unseen, fmt, quantized_op):
    out = tmp_path / fmt
    info = ifc_sdk.export(
        demo,
        format=fmt,
        out=out,
        int8=True,
        calib=calib,
        calib_size=settings["size"],
        window=settings["window"],
    )
    manifest = json.loads((out / "ifc_export.json").read_text())
    calibration = manifest["quantization"]["calibration"]
    assert manifest["precision"] == "int8"
    assert (calibration["videos"], calibration["frames"]) == (3, 6 * settings["window"])  # 6 windows
    assert manifest["quantization"]["quantized_graphs"] == ["frame", "window"]
    for graph in ("frame", "window"):
        assert quantized_op in (out / info.graphs[graph]).read_bytes().decode("latin-1")
    assert info.check["mask_sign_flipped"] < 0.02, info.check
    if fmt == "openvino":  # the window graph: its 4 mask head convolutions and nothing else
        import openvino as ov

        window = ov.Core().read_model(str(out / info.graphs["window"]))
        fed = [
            target.get_node()
            for op in window.get_ordered_ops()
            if op.get_type_name() == "FakeQuantize"
            for target in op.output(0).get_target_inputs()
        ]
        assert {node.get_type_name() for node in fed} == {"Convolution"}
        assert len({node.get_friendly_name() for node in fed}) == 4

    kwargs = dict(window=settings["window"], stride=settings["stride"], size=settings["size"])
    fp32 = ifc_sdk.segment_video(CHECK_CLIP, demo, progress=False, **kwargs)
    int8 = ifc_sdk.segment_video(CHECK_CLIP, ifc_sdk.load_model(out), progress=False, **kwargs)
    pairs = matched_tracks(fp32.tracks, int8.tracks)
    confident = [t for t in fp32.tracks if t.score >= 0.85]
    # Every sure detection is paired; a faint extra track of the fp32 model (the bundled one has a star
    # duplicate and a fragment of the square) may pair or not.
    assert len(confident) >= 4 and all(t.id in pairs for t in confident), pairs
    labels = [t.label for t in confident]
    for track in confident:  # the sure detections: same label, masks within a few border pixels
        label, iou = pairs[track.id]
        # A track with a same-class twin follows it where the model itself is unsure (issue 16: the example's
        # two stars swap tracks at frame 48); int8 moves those frames, not the borders. Measured (openvino):
        # 0.96 and 0.93 for the twins' tracks on the bundled model (0.96 and 0.90, then 0.97 and 0.87, on the
        # two before it, the frames under 0.9 IoU all in 5-12 and 48-56).
        bound = 0.8 if labels.count(track.label) > 1 else 0.9
        assert label == track.label and iou >= bound, (track.id, track.label, pairs)
    # Most sure tracks keep their masks to a few border pixels; the twins' tracks move the most: the median,
    # not the mean. Faint tracks are left out, as their masks sit near the threshold (the bundled model's
    # faint star duplicate and square fragment pair at 0.93 and 0.51). Measured on the bundled model with
    # openvino: 0.994 / 0.958 / 0.992 / 0.934 (median 0.975).
    assert np.median([pairs[t.id][1] for t in confident]) >= 0.95, pairs

    ap = {}
    for name, model in (("fp32", demo), ("int8", str(out))):
        results = predict_dataset(
            unseen, tmp_path / f"{name}.json", model=model, device="cpu", progress=False, **kwargs
        )
        ap[name] = evaluate_ytvis(unseen / "annotations.json", results)["AP"]
    assert ap["fp32"] > 0.4 and ap["int8"] >= ap["fp32"] - 0.02, ap
