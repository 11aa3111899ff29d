"""fp32 parity of every runtime backend with eager PyTorch (and the reference) on the reference fixtures.

Each backend runs through the one `VideoSegmenter` (windowing, tracking and output are shared), so these tests
check the exported graphs and the runtime adapters: identical tracks, labels and order, class probabilities
within 1e-4 absolute and mask IoU >= 0.999 against eager, for every window/stride run of the fixtures.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from exports import FORMATS, assert_same_result, exported
from reference import assert_matches_reference, model, run_video, video_runs

import ifc_sdk
from ifc_sdk.export import RuntimeClipModel

R50_RUNS = [run for name, run in video_runs() if name == "r50_seed0"]
R101_RUNS = [run for name, run in video_runs() if name == "r101_seed1"]


@pytest.mark.parametrize("run", R50_RUNS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_backend_matches_eager_r50(fmt, run):
    runtime = ifc_sdk.load_model(exported("r50_seed0", fmt))
    assert isinstance(runtime, RuntimeClipModel) and runtime.info.format == fmt
    result = run_video("r50_seed0", run, runtime)
    assert_same_result(result, run_video("r50_seed0", run))
    assert_matches_reference(result, "r50_seed0", run)


@pytest.mark.parametrize("run", R101_RUNS)
def test_r101_bgr_input_matches_eager(run):
    """The R101 fixture takes BGR input with caffe statistics: the host-side normalisation (the same for
    every backend; TorchScript exports fastest) must flip the channels."""
    runtime = ifc_sdk.load_model(exported("r101_seed1", "torchscript"))
    assert runtime.config.input_format == "BGR"
    result = run_video("r101_seed1", run, runtime)
    assert_same_result(result, run_video("r101_seed1", run))
    assert_matches_reference(result, "r101_seed1", run)


def test_predict_dataset_runs_an_export_as_it_runs_the_model(tmp_path):
    """`predict_dataset` takes an export folder as its model (it read ``model.num_classes``, which only the
    eager `IFC` has) and writes the eager model's results."""
    from ifc_sdk.data.synthetic import generate_dataset
    from ifc_sdk.evaluation.predict import predict_dataset

    data = tmp_path / "data"
    generate_dataset(data, num_videos=2, seed=3, num_frames=6, height=48, width=64)
    settings = dict(window=3, stride=1, size=64, device="cpu", progress=False)
    paths = {
        "eager": predict_dataset(data, tmp_path / "eager.json", model=model("r50_seed0"), **settings),
        "onnx": predict_dataset(
            data, tmp_path / "onnx.json", model=str(exported("r50_seed0", "onnx")), **settings
        ),
    }
    eager, onnx = (json.loads(paths[k].read_text()) for k in ("eager", "onnx"))
    assert len(eager) > 0
    assert [(r["video_id"], r["category_id"]) for r in onnx] == [
        (r["video_id"], r["category_id"]) for r in eager
    ]
    np.testing.assert_allclose([r["score"] for r in onnx], [r["score"] for r in eager], rtol=0, atol=1e-4)
