"""benchmarks/rows.py: the paper's rows and the precision options."""

from __future__ import annotations

import pytest
import torch

from benchmarks.rows import ROWS, parse_precisions, parse_rows, row_label


def test_rows_are_the_papers_table():
    assert [(r.arch, r.window, r.stride, r.paper_fps) for r in ROWS.values()] == [
        ("r50", 5, 1, 46.5),
        ("r50", 36, 1, 107.1),
        ("r101", 36, 1, 89.4),
    ]
    assert [r.key for r in parse_rows("R101_T36, r50_t5")] == ["r101_t36", "r50_t5"]
    assert row_label("r50_t36") == "R50 T=36" and row_label("sweep_t2_s1") == "sweep_t2_s1"


def test_reduced_precision_is_cuda_only():
    assert parse_precisions("fp32,bf16,fp16", torch.device("cuda")) == ["fp32", "bf16", "fp16"]
    assert parse_precisions("fp32", torch.device("cpu")) == ["fp32"]
    with pytest.raises(SystemExit, match="bf16 autocast is measured on CUDA only"):
        parse_precisions("fp32,bf16", torch.device("cpu"))
    with pytest.raises(SystemExit, match="unknown precision 'fp64'"):
        parse_precisions("fp64", torch.device("cuda"))
