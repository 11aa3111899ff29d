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


def run_video(name: str, run: str, m=None, **kwargs):
    """Segment the fixture video of ``name`` with the window/stride of ``run`` at the reference's size, with
    `segment_frames` and the model ``m`` (default: the cached reference model)."""
    from ifc_sdk.inference.predictor import segment_frames

    info = meta()["models"][name]
    spec = info["video_runs"][run]
    height, width = info["video"]["height"], info["video"]["width"]
    return segment_frames(
        m if m is not None else model(name),
        rgb_frames(name),
        window=spec["window_T"],
        stride=spec["clip_stride"],
        size=None,
        output_size=(height, width),
        **kwargs,
    )


def assert_matches_reference(
    result, name: str, run: str, *, prob_atol: float = 1e-4, min_iou: float = 0.999
) -> None:
    """Tracks, class probabilities, outputs (labels, order, scores) and masks of ``result`` against the
    reference's run ``run`` of model ``name``.

    Probabilities and scores agree within ``prob_atol``: fp32 on the CPU is bit-identical to the reference
    only where oneDNN picks the kernels the fixtures were made with (it picks by instruction set; on an
    AVX-512 AMD EPYC they differ by up to 2.2e-5)."""
    info = meta()["models"][name]
    spec = info["video_runs"][run]
    ref = tensors(spec["file"])
    assert len(result.tracks) == spec["num_tracks"]
    np.testing.assert_allclose(
        np.stack([t.class_probs for t in result.tracks]), ref["track_cls"].numpy(), rtol=0, atol=prob_atol
    )
    preds = result.predictions(multi_class=True, threshold=0.01)
    assert len(preds) == spec["num_outputs"]
    assert [p["label"] for p in preds] == ref["pred_labels"].tolist()
    np.testing.assert_allclose(
        [p["score"] for p in preds], ref["pred_scores"].numpy(), rtol=0, atol=prob_atol
    )
    ref_masks = unpack_masks(ref["result_masks_packed"], info["video"]["width"])
    for pred, row in zip(preds, ref["pred_track_idx"].tolist()):
        assert pred.track_id == row
        mine = pred["masks"]
        assert mine.shape == ref_masks[row].shape
        union = (mine | ref_masks[row]).sum()
        iou = (mine & ref_masks[row]).sum() / union if union else 1.0
        assert iou >= min_iou, (pred.track_id, iou)
