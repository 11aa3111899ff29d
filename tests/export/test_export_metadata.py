"""The export manifest: a JSON beside the graphs, the same JSON inside ONNX and OpenVINO graph files."""

from __future__ import annotations

import json

import pytest
from exports import exported
from reference import model
from tiny import tiny_model

import ifc_sdk
from ifc_sdk.api import inference_defaults
from ifc_sdk.errors import ConfigError
from ifc_sdk.export.metadata import MANIFEST, RECOMMENDED_ATTRIBUTE, ExportInfo, is_export_dir

GRAPHS = {"frame": "frame.onnx", "window": "window.onnx"}


def sample_info() -> ExportInfo:
    config = tiny_model(
        categories=["circle", "square", "triangle", "star", "cross"], input_format="BGR"
    ).config
    return ExportInfo(
        format="onnx",
        precision="int8",
        graphs=GRAPHS,
        files=[*GRAPHS.values(), MANIFEST],
        config=config,
        quantization={"method": "test", "calibration": {"frames": 30}},
        check={"max_abs_diff": {"pred_logits": 0.5}},
        versions={"torch": "2.x"},
        inference={"window": 5, "stride": 1, "size": 320},
    )


def test_manifest_round_trip(tmp_path):
    info = sample_info()
    (tmp_path / MANIFEST).write_text(info.to_json())
    assert is_export_dir(tmp_path) and not is_export_dir(tmp_path / "missing")
    back = ExportInfo.read(tmp_path)
    assert back == info
    data = json.loads(info.to_json())
    assert data["input"]["input_format"] == "BGR"
    assert data["input"]["pixel_mean"] == list(info.config.pixel_mean)
    assert data["config"]["categories"] == ["circle", "square", "triangle", "star", "cross"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format_version": 99}, "export format version 99"),
        ({"format": "tflite"}, "unknown export format 'tflite'"),
        ({"graphs": {"frame": "f.onnx"}}, "a 'frame' and a 'window' graph"),
        ({"config": {"num_classes": 5, "colour": 1}}, "unknown IFC config keys: \\['colour'\\]"),
        ({"files": None}, "has no 'files' entry"),
        (
            {"inference": {"size": 0}},
            "'inference' must map some of window, stride, size to positive integers",
        ),
        ({"inference": {"frames": 5}}, "'inference' must map"),
    ],
)
def test_malformed_manifests_are_config_errors(tmp_path, change, message):
    data = json.loads(sample_info().to_json())
    data.update(change)
    data = {k: v for k, v in data.items() if v is not None}
    (tmp_path / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message):
        ExportInfo.read(tmp_path)


def test_a_folder_without_manifest_is_not_an_export(tmp_path):
    with pytest.raises(ConfigError, match="not an exported model"):
        ExportInfo.read(tmp_path)
    (tmp_path / MANIFEST).write_text("{")
    with pytest.raises(ConfigError, match="cannot read the export manifest"):
        ExportInfo.read(tmp_path)


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_graph_files_carry_the_manifest(fmt):
    if fmt == "onnx":
        from ifc_sdk.export.onnx import read_metadata
    else:
        from ifc_sdk.export.openvino import read_metadata
    folder = exported("r50_seed0", fmt)
    info = ExportInfo.read(folder)
    for name in info.graphs.values():
        assert json.loads(read_metadata(folder / name)) == info.to_dict()
    runtime = ifc_sdk.load_model(folder)
    assert runtime.config == model("r50_seed0").config
    assert info.versions["torch"] and info.precision == "fp32" and info.quantization is None


def test_recommended_settings_travel_with_the_export(tmp_path):
    """A model loaded by manifest name carries its recommended window/stride/size; its export records them and
    the folder, by path or loaded, gives them as the defaults (so ``predict-dataset --model EXPORT_DIR`` runs
    at the settings the model was measured at)."""
    import shutil

    folder = tmp_path / "export"
    shutil.copytree(exported("tiny", "onnx"), folder)
    assert inference_defaults(folder) == {"window": 5, "stride": 1, "size": 360}  # none recorded
    info = ExportInfo.read(folder)
    assert info.inference is None and not hasattr(ifc_sdk.load_model(folder), RECOMMENDED_ATTRIBUTE)
    data = json.loads(info.to_json())
    data["inference"] = {"window": 3, "stride": 2, "size": 200}
    (folder / MANIFEST).write_text(json.dumps(data))
    assert inference_defaults(folder) == inference_defaults(str(folder)) == data["inference"]
    assert inference_defaults(ifc_sdk.load_model(folder)) == data["inference"]


def test_export_records_the_models_recommended_settings(tmp_path):
    tiny = tiny_model()
    setattr(tiny, RECOMMENDED_ATTRIBUTE, {"window": 4, "stride": 1, "size": 128})
    info = ifc_sdk.export(tiny, format="torchscript", out=tmp_path / "ts", check=False)
    assert info.inference == {"window": 4, "stride": 1, "size": 128}
    assert inference_defaults(tmp_path / "ts") == info.inference
