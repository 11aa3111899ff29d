"""benchmarks/reports.py and long_video.py: the committed raw results still render to the committed tables,
so the JSON schema and results.md of benchmarks/results/ (quoted by RESULTS.md) are what the code writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import long_video, reports

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
ROW_KEYS = {"name", "fps", "baseline_fps", "speedup", "precision", "device", "fps_min", "fps_max", "seconds"}


@pytest.mark.parametrize("run", ["cpu", "cpu_ablation", "cpu_real", "cpu_sweep"])
def test_committed_results_render_to_their_markdown(run):
    report = json.loads((RESULTS / run / "results.json").read_text())
    assert reports.markdown(report) == (RESULTS / run / "results.md").read_text()
    assert all(ROW_KEYS <= set(row) for row in report["rows"])


def test_committed_long_video_results_render_to_their_markdown():
    report = json.loads((RESULTS / "cpu_long" / "long_video.json").read_text())
    assert long_video.markdown(report) == (RESULTS / "cpu_long" / "long_video.md").read_text()


def test_extra_sections_come_before_the_footer(tmp_path):
    report = json.loads((RESULTS / "cpu_ablation" / "results.json").read_text())
    reports.write(report, tmp_path, [lambda r: ["", f"extra: {len(r['ablation'])} ablation rows"]])
    md = (tmp_path / "results.md").read_text()
    assert "\nextra: 6 ablation rows\n\nModels: " in md
    assert json.loads((tmp_path / "results.json").read_text()) == report
    assert not (tmp_path / "results.json.tmp").exists()
