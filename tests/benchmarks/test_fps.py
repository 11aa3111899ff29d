"""benchmarks/fps.py and ``ifc-sdk bench``: the entry points, a tiny row end to end on a tiny synthetic mp4,
and a new kind of measurement plugged in through `fps.ROW_KINDS`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import fps
from benchmarks.harness import STAGES
from benchmarks.kinds import RowKind
from benchmarks.reports import markdown
from ifc_sdk.cli import build_parser
from ifc_sdk.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[2]


def _tiny(tmp_path: Path, *extra: str) -> list[str]:
    """A quick run (8 frames of 96x160, reduced-width models, one repeat) of R50 T=5, one thread."""
    return [
        "--quick",
        "--rows",
        "r50_t5",
        "--threads",
        "1",
        "--cache",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path / "out"),
        *extra,
    ]


def test_bench_cli_passes_every_option_to_the_script():
    args = build_parser().parse_args(["bench", "--rows", "r50_t5", "--quick", "--help"])
    assert args.script_args == ["--rows", "r50_t5", "--quick", "--help"]
    args = build_parser().parse_args(["bench", "long-video", "--lengths", "36"])
    assert args.script_args == ["long-video", "--lengths", "36"]


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        (["bench", "--help"], "usage: ifc-sdk bench [-h]"),
        (["bench", "long-video", "-h"], "usage: ifc-sdk bench long-video [-h]"),
    ],
)
def test_bench_help_names_the_command(argv, usage, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(argv)
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(usage), out[:200]
    assert "--rows" in out if argv == ["bench", "--help"] else "--lengths" in out


@pytest.mark.parametrize("by_path", [True, False])
def test_script_and_module_entry_points(by_path, tmp_path):
    """``python benchmarks/fps.py`` from any folder (RESULTS.md's commands) and ``python -m benchmarks.fps``."""
    command = [str(ROOT / "benchmarks" / "fps.py")] if by_path else ["-m", "benchmarks.fps"]
    done = subprocess.run(
        [sys.executable, *command, "--help"],
        cwd=tmp_path if by_path else ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: fps.py [-h]") and "--sweep-windows" in done.stdout


def test_tiny_row_end_to_end(tmp_path):
    assert fps.main(_tiny(tmp_path, "--modes", "e2e")) == 0
    out = tmp_path / "out"
    report = json.loads((out / "results.json").read_text())
    assert (out / "results.md").read_text() == markdown(report)
    assert (tmp_path / "cache" / "synthetic_8f_96x160.mp4").is_file()
    (row,) = report["rows"]
    assert row["name"] == "R50 T=5 | synthetic | end-to-end (mp4)"
    assert (row["precision"], row["device"], row["frames"], row["window"]) == ("fp32", "cpu", 8, 5)
    assert row["fps"] > 0 and row["baseline_fps"] > 0
    assert row["speedup"] == pytest.approx(row["fps"] / row["baseline_fps"], rel=1e-3)
    # both sides agree on every output of the calibrated random model (about 20 instances per clip)
    outputs = row["outputs"]
    assert outputs["equal"] and outputs["mask_pixels_differing"] == 0
    assert outputs["tracks"] == outputs["baseline_tracks"] >= 5
    assert set(row["breakdown_s"]) == set(STAGES) == set(row["baseline_breakdown_s"])
    assert report["models"]["r50_t5"]["instances_target"] == 20
    assert report["config"]["quick"] and "ablation" not in report and "sweep" not in report


def test_a_new_row_kind_plugs_in(tmp_path, monkeypatch):
    seen = []

    def run(bench, row, model):
        seen.append((row.key, bench.videos, len(bench.decoded["synthetic"]), bench.args.extra_setting))
        bench.report.setdefault("extra", []).append({"row": row.key, "model": type(model).__name__})
        bench.save()

    kind = RowKind(
        name="extra",
        run=run,
        wanted=lambda args: args.extra,
        add_arguments=lambda p: (
            p.add_argument("--extra", action="store_true"),
            p.add_argument("--extra-setting"),
        ),
        markdown=lambda report: ["", f"Extra: {report['extra']}"],
    )
    monkeypatch.setattr(fps, "ROW_KINDS", [kind])
    assert fps.main(_tiny(tmp_path, "--extra", "--extra-setting", "x")) == 0
    assert seen == [("r50_t5", ["synthetic"], 8, "x")]
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert report["extra"] == [{"row": "r50_t5", "model": "IFC"}] and report["rows"] == []
    md = (tmp_path / "out" / "results.md").read_text()
    assert "\nExtra: [{'row': 'r50_t5', 'model': 'IFC'}]\n\nModels: " in md
