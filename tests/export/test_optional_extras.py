"""A missing optional runtime is a ConfigError naming the pip extra, raised before any work or file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tiny import tiny_model

from ifc_sdk.errors import ConfigError
from ifc_sdk.export import export, load_exported
from ifc_sdk.export.metadata import ExportInfo


def hide(monkeypatch, *modules: str) -> None:
    """Make ``import module`` fail as if the package were not installed."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def fake_export(folder: Path, fmt: str, graphs: dict[str, str]) -> Path:
    folder.mkdir()
    for name in graphs.values():
        (folder / name).write_bytes(b"not read: the runtime import fails first")
    info = ExportInfo(fmt, "fp32", graphs, [*graphs.values()], tiny_model().config)
    (folder / "ifc_export.json").write_text(info.to_json())
    return folder


@pytest.mark.parametrize(
    ("fmt", "graphs", "module", "extra"),
    [
        ("onnx", {"frame": "frame.onnx", "window": "window.onnx"}, "onnxruntime", "onnx"),
        ("openvino", {"frame": "frame.xml", "window": "window.xml"}, "openvino", "openvino"),
    ],
)
def test_loading_without_the_runtime_names_the_extra(monkeypatch, tmp_path, fmt, graphs, module, extra):
    folder = fake_export(tmp_path / "export", fmt, graphs)
    hide(monkeypatch, module)
    with pytest.raises(
        ConfigError, match=rf'needs the optional package {module!r}.*pip install "ifc-sdk\[{extra}\]"'
    ):
        load_exported(folder)


@pytest.mark.parametrize(
    ("fmt", "kwargs", "module", "extra"),
    [
        ("onnx", {}, "onnxscript", "onnx"),
        ("onnx", {}, "onnxruntime", "onnx"),  # the check after exporting runs the graphs
        ("onnx", {"int8": True, "calib": "clip.mp4"}, "onnxruntime.quantization", "onnx"),
        ("openvino", {}, "openvino", "openvino"),
        ("openvino", {"int8": True, "calib": "clip.mp4"}, "nncf", "openvino"),
    ],
)
def test_exporting_without_the_extra_fails_before_any_work(monkeypatch, tmp_path, fmt, kwargs, module, extra):
    hide(monkeypatch, module)
    with pytest.raises(ConfigError, match=rf'pip install "ifc-sdk\[{extra}\]"'):
        export(tiny_model(), fmt, tmp_path / "out", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_the_sdk_imports_without_any_runtime():
    """The runtimes are imported lazily: ``import ifc_sdk`` (export, CLI included) works without them."""
    blocked = ("onnx", "onnxscript", "onnxruntime", "openvino", "nncf")
    code = (
        f"import sys\nfor m in {blocked!r}: sys.modules[m] = None\n"
        "import ifc_sdk, ifc_sdk.cli.export, ifc_sdk.export.onnx, ifc_sdk.export.openvino\n"
        "assert callable(ifc_sdk.export)\nprint('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
