"""``ifc-sdk export`` end to end: export, the check it prints, ``load_model(DIR)``, ``segment_video``."""

from __future__ import annotations

import re

from exports import assert_same_result

import ifc_sdk
from ifc_sdk.cli import main
from ifc_sdk.export import RuntimeClipModel
from ifc_sdk.export.check import CHECK_CLIP

MODEL = "shapes-demo"  # bundled, trained: it finds the shapes of the bundled example


def test_export_load_and_segment(capsys, tmp_path):
    out = tmp_path / "onnx"
    assert main(["export", MODEL, "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"to {out}" in printed and "frame.onnx, window.onnx, ifc_export.json" in printed
    diffs = {k: float(v) for k, v in re.findall(r"(\w[\w ]*?) (\d\.\d\de[-+]\d\d)", printed)}
    # Float rounding: the bundled model's mask logits reach |155| on this clip (1.1e-4 measured, ~7e-7 of that);
    # no mask pixel decided differently.
    assert diffs["class probabilities"] < 1e-5 and diffs["mask logits"] < 1e-3, printed
    assert "mask pixels decided differently: 0.000%" in printed, printed

    runtime = ifc_sdk.load_model(out)
    eager = ifc_sdk.load_model(MODEL, device="cpu")
    assert isinstance(runtime, RuntimeClipModel) and runtime.config == eager.config
    assert runtime.config.categories == ["circle", "square", "triangle", "star", "cross"]
    kwargs = dict(window=5, stride=2, size=160, progress=False)
    result = ifc_sdk.segment_video(CHECK_CLIP, runtime, **kwargs)
    expected = ifc_sdk.segment_video(CHECK_CLIP, eager, **kwargs)
    assert result.num_frames == 60 and len(result.tracks) > 0
    assert_same_result(result, expected)
    assert [t.label_name for t in result.tracks] == [t.label_name for t in expected.tracks]

    # A second export into the same folder is refused (one line, exit 1) until --overwrite is given.
    assert main(["export", MODEL, "--format", "onnx", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "already holds an exported model" in err and len(err.strip().splitlines()) == 1


def test_int8_needs_calibration_frames(capsys, tmp_path):
    assert main(["export", MODEL, "--int8", "--out", str(tmp_path / "q")]) == 1
    assert "needs calibration frames" in capsys.readouterr().err
    assert not (tmp_path / "q").exists()
