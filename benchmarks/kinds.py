"""What a kind of measurement is (`RowKind`) and the state of a benchmark run it is given (`Bench`).

``fps.py`` builds one model per row (R50 T=5, ...) and hands it to each kind in `fps.ROW_KINDS` in turn: the
fresh-process memory probe, the main table (ifc_sdk against the baseline), the ablation, the sweep. A new
kind (e.g. eager against exported runtimes) is a module that defines a `RowKind` and one line in that list;
its options, its rows in ``results.json`` and its section of ``results.md`` come with it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import reports
from benchmarks.rows import Row

Section = Callable[[dict], list[str]]  # report -> its lines of results.md


@dataclass
class Bench:
    """One ``fps.py`` run: its options, device, videos, and the report the kinds add their results to."""

    args: argparse.Namespace
    device: torch.device
    rows: list[Row]
    videos: list[str]  # names; the first is the one the ablation, sweep and memory probe use
    paths: dict[str, Path]  # video name -> its mp4
    decoded: dict[str, list[np.ndarray]]  # video name -> its frames, uint8 (H, W, 3) RGB
    precisions: list[str]
    size: int | None  # test-time short side (None keeps the frames)
    warmup: int  # full-length warm-up runs per measurement
    weights: dict[str, str]  # arch -> real weights (absent: calibrated random weights)
    report: dict
    out_dir: Path
    log: Callable[[str], None]
    sections: Sequence[Section] = field(default_factory=tuple)  # extra results.md sections

    def save(self) -> None:
        """Write ``results.json`` and ``results.md`` as they are now (after every measurement)."""
        reports.write(self.report, self.out_dir, self.sections)


@dataclass(frozen=True)
class RowKind:
    """A kind of measurement made for each row, in the order of `fps.ROW_KINDS`.

    ``run(bench, row, model)`` measures the row with its model (built and calibrated once per row), adds its
    results to ``bench.report`` under its own key and calls ``bench.save()``; it runs when
    ``wanted(args)``. ``add_arguments`` adds its options to ``fps.py``; ``markdown`` renders its section of
    ``results.md``, placed after the built-in sections. The built-in kinds (memory, table, ablation, sweep)
    leave both None: their options are ``fps.parse_args``'s own and their sections `reports.SECTIONS`.
    """

    name: str
    run: Callable[[Bench, Row, Any], None]
    wanted: Callable[[argparse.Namespace], bool]
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    markdown: Section | None = None
