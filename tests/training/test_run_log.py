"""The run's logs: resuming drops later and unreadable lines of metrics.jsonl, a full disk is an OutputError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ifc_sdk.errors import OutputError
from ifc_sdk.training import run_log as run_log_mod
from ifc_sdk.training.run_log import RunLog


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_resume_keeps_lines_up_to_the_checkpoint_and_drops_a_torn_last_line(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(
        "".join(json.dumps({"iteration": i, "loss": 1.0 / i}) + "\n" for i in (1, 2, 3))
        + '{"iteration": 4, "lo'
    )
    log = RunLog(tmp_path, main=True, progress=False)
    with pytest.warns(UserWarning, match=r"metrics\.jsonl: dropped its last line, cut short"):
        log.open(2, total=6, desc="test")
    log.log({"iteration": 3, "loss": 0.25})
    log.close()
    assert _lines(metrics) == [
        {"iteration": 1, "loss": 1.0},
        {"iteration": 2, "loss": 0.5},
        {"iteration": 3, "loss": 0.25},
    ]


def test_lines_that_are_not_records_are_named_and_dropped(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text(
        '{"iteration": 1}\n[1, 2]\n{"iteration": "x"}\n{"iteration": 2}\n'
    )
    log = RunLog(tmp_path, main=True, progress=False)
    with pytest.warns(UserWarning, match=r"dropped line\(s\) 2, 3: not JSON records"):
        log.open(5, total=6, desc="test")
    log.close()
    assert _lines(tmp_path / "metrics.jsonl") == [{"iteration": 1}, {"iteration": 2}]


def test_other_processes_write_nothing(tmp_path: Path) -> None:
    log = RunLog(tmp_path, main=False, progress=True)
    log.open(0, total=2, desc="test")
    log.log({"iteration": 1, "loss": 1.0})
    log.write_recipe({"recipe": {}})
    log.close()
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_while_logging_is_an_output_error(tmp_path: Path, full_disk) -> None:
    full_disk(run_log_mod)
    log = RunLog(tmp_path, main=True, progress=False)
    log.open(0, total=2, desc="test")
    with pytest.raises(OutputError, match="disk full") as info:
        log.log({"iteration": 1, "loss": 1.0})
    assert info.value.path == str(tmp_path / "metrics.jsonl")
    log.close()
