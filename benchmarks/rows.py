"""What is measured: the rows of the IFC paper's speed table, and the precisions a row can run in."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Row:
    """One configuration of the table: a backbone and a window/stride (the paper's FPS for comparison)."""

    key: str
    label: str
    arch: str
    window: int
    stride: int
    paper_fps: float | None


ROWS = {
    "r50_t5": Row("r50_t5", "R50 T=5", "r50", 5, 1, 46.5),
    "r50_t36": Row("r50_t36", "R50 T=36", "r50", 36, 1, 107.1),
    "r101_t36": Row("r101_t36", "R101 T=36", "r101", 36, 1, 89.4),
}

PRECISIONS = ("fp32", "bf16", "fp16")


def row_label(key: str) -> str:
    """The table label of a row key (other keys, e.g. of sweep rows, as they are)."""
    return ROWS[key].label if key in ROWS else key


def parse_rows(spec: str) -> list[Row]:
    """``"r50_t5,r50_t36"`` -> the rows, in that order."""
    return [ROWS[r.strip().lower()] for r in spec.split(",")]


def parse_precisions(spec: str, device: torch.device) -> list[str]:
    """``"fp32,bf16"`` -> the precisions; reduced precision is CUDA autocast (the CPU path is fp32)."""
    precisions = spec.split(",")
    for p in precisions:
        if p not in PRECISIONS:
            raise SystemExit(f"unknown precision {p!r}")
        if p != "fp32" and device.type != "cuda":
            raise SystemExit(f"{p} autocast is measured on CUDA only (the CPU path is fp32)")
    return precisions
