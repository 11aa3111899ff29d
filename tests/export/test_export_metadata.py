"""The export manifest: a JSON beside the graphs, the same JSON inside ONNX and OpenVINO graph files."""

from __future__ import annotations

import json

import pytest
from exports import exported
from reference import model
from tiny import tiny_model

import ifc_sdk
from ifc_sdk.errors import ConfigError
from ifc_sdk.export.metadata import MANIFEST, ExportInfo, is_export_dir

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
