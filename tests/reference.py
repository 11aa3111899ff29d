"""Access to the reference fixtures in ../shared/fixtures/reference (see its README)."""

from __future__ import annotations

import functools
import json

import numpy as np
import torch
from conftest import REFERENCE, require
from safetensors.torch import load_file

MODELS = ("r50_seed0", "r101_seed1")


@functools.cache
def meta() -> dict:
    return json.loads(require(REFERENCE / "fixtures.json").read_text())


def tensors(name: str) -> dict[str, torch.Tensor]:
    return load_file(require(REFERENCE / name))


@functools.cache
def _model(name: str, dropout: float):
    from ifc_sdk.checkpoint import load_reference_checkpoint

    return load_reference_checkpoint(require(REFERENCE / f"{name}.pth"), dropout=dropout)


def model(name: str, dropout: float = 0.1):
    """The reference checkpoint loaded through the SDK (cached; eval mode)."""
    return _model(name, dropout).eval()


def rgb_frames(name: str) -> np.ndarray:
    """The fixture video as uint8 (L, H, W, 3) RGB: the R101 fixtures store BGR, the SDK API takes RGB."""
    frames = tensors(f"{name}_input.safetensors")["frames"].permute(0, 2, 3, 1).numpy()
    return (
        np.ascontiguousarray(frames[..., ::-1])
        if meta()["models"][name]["config"]["INPUT.FORMAT"] == "BGR"
        else frames
    )


def video_runs() -> list[tuple[str, str]]:
    if not (REFERENCE / "fixtures.json").exists():
        return [(m, "missing") for m in MODELS]
    return [(m, run) for m in MODELS for run in meta()["models"][m]["video_runs"]]


def unpack_masks(packed: torch.Tensor, width: int) -> np.ndarray:
    return np.unpackbits(packed.numpy(), axis=-1, bitorder="big")[..., :width].astype(bool)
