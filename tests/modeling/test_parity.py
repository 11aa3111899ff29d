"""Clip-level parity with the reference: backbone features, position encoding, heads (fp32, CPU)."""

from __future__ import annotations

import pytest
import torch
from reference import MODELS, model, tensors


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("name", MODELS)
def test_backbone_position_and_heads_match_reference(name):
    m = model(name)
    ref = tensors(f"{name}_clip0.safetensors")
    frames = tensors(f"{name}_input.safetensors")["frames"][:3]  # stored in the network's channel order
    x = ((frames.float() - m.pixel_mean) / m.pixel_std).contiguous()
    with torch.no_grad():
        feats = m.backbone_features(x)
        assert rel_err(feats["res2"][:1], ref["res2"]) < 1e-4
        for level in ("res3", "res4", "res5"):
            assert feats[level].shape == ref[level].shape
            assert rel_err(feats[level], ref[level]) < 1e-4, level
        pos = m.position_encoding(ref["res5.mask"])
        torch.testing.assert_close(pos, ref["res5.pos"], rtol=0, atol=1e-6)
        out = m.forward_clips(feats["res3"], feats["res4"], feats["res5"], 3, aux=False)
    assert out["pred_logits"].shape == ref["pred_logits"].shape
    assert rel_err(out["pred_logits"], ref["pred_logits"]) < 1e-4
    assert rel_err(out["pred_masks"], ref["pred_masks"]) < 1e-4


@pytest.mark.parametrize("name", MODELS)
def test_training_forward_with_padding_matches_reference(name):
    """Two videos of different sizes: zero padding after normalisation and per-level padding masks."""
    m = model(name, dropout=0.0).train()
    ref = tensors(f"{name}_train.safetensors")
    videos = [ref[f"video{v}.frames"] for v in range(2)]
    h, w = max(v.shape[-2] for v in videos), max(v.shape[-1] for v in videos)
    x = torch.zeros(2, 3, 3, h, w)
    for i, v in enumerate(videos):  # fixture frames are in network order; normalize() takes RGB
        x[i, :, :, : v.shape[-2], : v.shape[-1]] = m.normalize(
            v.flip(1) if m.config.input_format == "BGR" else v
        )
    out = m(x, [tuple(v.shape[-2:]) for v in videos])
    m.eval()
    assert rel_err(out["pred_logits"].detach(), ref["out.pred_logits"]) < 1e-4
    assert rel_err(out["pred_masks"].detach(), ref["out.pred_masks"]) < 1e-4
    assert len(out["aux_outputs"]) == 2
    for i, aux in enumerate(out["aux_outputs"]):
        assert rel_err(aux["pred_logits"].detach(), ref[f"out.aux{i}.pred_logits"]) < 1e-4
        assert rel_err(aux["pred_masks"].detach(), ref[f"out.aux{i}.pred_masks"]) < 1e-4
