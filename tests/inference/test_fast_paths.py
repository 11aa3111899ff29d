"""The accelerator inference paths against the reference fixtures.

On an accelerator ifc_sdk folds FrozenBN into the convolutions, runs the backbone in channels_last, attention
through ``F.scaled_dot_product_attention``, and resizes and RLE-encodes on the device
(`ifc_sdk.modeling.kernels`). Patching `reference_kernels` runs those same paths on the CPU, so they are
checked here without a GPU (the on-device resize in test_preprocess.py); the CUDA tests skip where there is
none.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import require
from reference import REFERENCE, assert_matches_reference, run_video

from ifc_sdk.checkpoint import load_reference_checkpoint
from ifc_sdk.modeling import kernels

CASES = [("r50_seed0", "T3_S1"), ("r101_seed1", "T4_S2")]


def fresh_model(name: str, device: str = "cpu"):
    """An uncached copy: the fast paths convert the backbone to channels_last in place."""
    return load_reference_checkpoint(require(REFERENCE / f"{name}.pth")).eval().to(device)


@pytest.fixture
def fast_paths(monkeypatch):
    monkeypatch.setattr(kernels, "reference_kernels", lambda device: False)


@pytest.mark.parametrize(("name", "run"), CASES)
def test_fast_paths_match_reference(fast_paths, name, run):
    m = fresh_model(name)
    result = run_video(name, run, m)
    assert m.backbone.res2[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    # Folding FrozenBN reorders the float arithmetic: the reference README's feature tolerance, not bits.
    assert_matches_reference(result, name, run, min_iou=0.995)


def test_bf16_autocast_on_cpu_keeps_tracks_and_masks():
    """CPU bf16 autocast (convolution outputs in bf16 meet fp32 FrozenBN statistics) against fp32 with trained
    weights (the bundled demo model on the bundled example, at its recommended settings): the same confident
    tracks (score >= 0.85) with the same labels in the same order, masks within the 0.98 IoU asked of reduced
    precision. A faint track (the demo model's duplicate star, score 0.63) is as unstable under bf16 as under
    any small change of the input: its windows' links sit near the tracker's threshold, and bf16 splits it in two
    (0.58 and 0.64). (The fixtures' random weights give soft masks, logits near 0, where bf16 moves borders more
    than it does for any trained model; so does the demo model off its scale: at size 160 it adds uncertain
    tracks, one of them at IoU 0.954.)"""
    import ifc_sdk
    from ifc_sdk.api import inference_defaults
    from ifc_sdk.cli.demo import EXAMPLE_VIDEO

    m = ifc_sdk.load_model("shapes-demo", device="cpu")
    settings = inference_defaults("shapes-demo")  # window 7, stride 1, size 320
    exact = ifc_sdk.segment_video(EXAMPLE_VIDEO, m, **settings, progress=False)
    reduced = ifc_sdk.segment_video(EXAMPLE_VIDEO, m, **settings, progress=False, precision="bf16")
    exact_tracks = [t for t in exact.tracks if t.score >= 0.85]
    reduced_tracks = [t for t in reduced.tracks if t.score >= 0.85]
    assert len(exact_tracks) >= 4
    assert [t.label for t in reduced_tracks] == [t.label for t in exact_tracks]
    ious = []
    for a, b in zip(exact_tracks, reduced_tracks):
        ma, mb = a.mask_array(), b.mask_array()
        ious.append((ma & mb).sum() / max((ma | mb).sum(), 1))
    assert min(ious) >= 0.97 and np.mean(ious) >= 0.98, ious


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(("name", "run"), CASES)
def test_cuda_fp32_matches_reference(name, run):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    m = fresh_model(name, "cuda")
    result = run_video(name, run, m)
    assert_matches_reference(result, name, run, min_iou=0.995)
