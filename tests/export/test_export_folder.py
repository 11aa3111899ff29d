"""The output folder rules of `ifc_sdk.export`: staged, user files kept, an export replaced only on request.

The graph writer is replaced by a fake that writes small files (tracing is tested elsewhere), so these tests
check the folder handling alone, with the real manifest.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny import tiny_model

from ifc_sdk.errors import ConfigError, OutputError
from ifc_sdk.export import exporter
from ifc_sdk.export.metadata import MANIFEST, ExportInfo


class FakeBackend:
    FILES = {"frame": "frame.ts", "window": "window.ts"}
    written: list[Path] = []
    fail = False

    @classmethod
    def write_graphs(cls, graphs, folder: Path) -> dict[str, str]:
        for name in cls.FILES.values():
            (folder / name).write_text(f"graph {name}")
            cls.written.append(folder / name)
        if cls.fail:
            raise RuntimeError("tracing failed")
        return dict(cls.FILES)


@pytest.fixture
def fake(monkeypatch):
    FakeBackend.written, FakeBackend.fail = [], False
    monkeypatch.setattr(exporter, "_writer", lambda fmt: FakeBackend)
    return FakeBackend


def run(out: Path, **kwargs) -> ExportInfo:
    return exporter.export(tiny_model(), "torchscript", out, check=False, **kwargs)


def listing(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def test_writes_into_a_new_folder_through_a_staging_folder(fake, tmp_path):
    out = tmp_path / "a" / "export"
    info = run(out)
    assert sorted(p.name for p in out.iterdir()) == ["frame.ts", MANIFEST, "window.ts"]
    assert all(p.parent.name.startswith(".export.staging-") for p in fake.written)
    assert not [p for p in out.parent.iterdir() if p.name != "export"]  # staging folder removed
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["files"] == ["frame.ts", "window.ts", MANIFEST] == info.files
    assert manifest["config"]["num_queries"] == 6 and manifest["precision"] == "fp32"


def test_keeps_user_files_and_refuses_to_replace_an_export(fake, tmp_path):
    out = tmp_path / "models"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    run(out)
    before = listing(out)
    assert before["notes.txt"] == "mine"
    with pytest.raises(OutputError, match="already holds an exported model"):
        run(out)
    assert listing(out) == before


def test_overwrite_replaces_exactly_the_old_exports_files(fake, tmp_path):
    out = tmp_path / "models"
    run(out)
    (out / "notes.txt").write_text("mine")
    fake.FILES = {"frame": "frame.pt2", "window": "window.pt2"}
    try:
        run(out, overwrite=True)
    finally:
        fake.FILES = {"frame": "frame.ts", "window": "window.ts"}
    assert sorted(listing(out)) == ["frame.pt2", MANIFEST, "notes.txt", "window.pt2"]
    assert ExportInfo.read(out).graphs == {"frame": "frame.pt2", "window": "window.pt2"}


def test_refuses_to_clobber_a_user_file_with_a_graphs_name(fake, tmp_path):
    out = tmp_path / "models"
    out.mkdir()
    (out / "frame.ts").write_text("mine")
    with pytest.raises(OutputError, match="not part of an earlier export"):
        run(out, overwrite=True)
    assert listing(out) == {"frame.ts": "mine"}


def test_a_failure_leaves_the_folder_as_it_was(fake, tmp_path):
    out = tmp_path / "models"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    fake.fail = True
    with pytest.raises(RuntimeError, match="tracing failed"):
        run(out)
    assert listing(out) == {"notes.txt": "mine"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]


def test_the_output_must_be_a_folder(fake, tmp_path):
    out = tmp_path / "file"
    out.write_text("x")
    with pytest.raises(OutputError, match="existing file, not a folder"):
        run(out)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"format": "tflite"}, "unknown export format 'tflite'"),
        ({"format": "torchscript", "int8": True, "calib": "v.mp4"}, "int8 export is available for onnx"),
        ({"format": "onnx", "int8": True}, "int8 export needs calibration frames"),
        ({"format": "onnx", "calib": "v.mp4"}, "only used by an int8 export"),
    ],
)
def test_arguments_are_checked_before_any_work(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        exporter.export(tiny_model(), out=tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_only_an_ifc_is_exported(tmp_path):
    with pytest.raises(ConfigError, match="needs an IFC model"):
        exporter.export("r50", "onnx", tmp_path / "out")
