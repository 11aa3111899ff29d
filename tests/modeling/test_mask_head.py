"""The mask head's optional position encoding (``IFCConfig.mask_position``, not in the reference).

Without it the pixel features are translation-equivariant, so a query's mask logits are equal on two objects that
look the same: the shapes demo merged same-class (same-colour) objects into one track for this reason.
"""

from __future__ import annotations

import pytest
import torch

from ifc_sdk.checkpoint import check_config_fields, infer_config
from ifc_sdk.errors import ConfigError
from ifc_sdk.modeling import IFCConfig, build_ifc, preset_config
from ifc_sdk.modeling.mask_head import MaskHead
from ifc_sdk.training.init_weights import load_finetune_init

DIM = 16


def head(position: bool, seed: int = 0) -> MaskHead:
    torch.manual_seed(seed)
    h = MaskHead(DIM, (24, 12), num_groups=4, position=position).eval()
    if position:  # as after training: a projection that is not zero
        torch.nn.init.normal_(h.pos_proj.weight, std=0.5)
        torch.nn.init.normal_(h.pos_proj.bias, std=0.5)
    return h


def constant_inputs(n: int, h8: int, w8: int) -> tuple[torch.Tensor, ...]:
    """Spatially constant features: every pixel of the interior looks the same."""
    torch.manual_seed(1)
    memory = torch.randn(n, DIM, 1, 1).expand(n, DIM, h8 // 4, w8 // 4)
    res4 = torch.randn(n, 24, 1, 1).expand(n, 24, h8 // 2, w8 // 2)
    res3 = torch.randn(n, 12, 1, 1).expand(n, 12, h8, w8)
    return memory.contiguous(), res4.contiguous(), res3.contiguous()


def test_position_separates_pixels_that_look_the_same():
    memory, res4, res3 = constant_inputs(1, 32, 48)
    query = torch.randn(DIM)
    with torch.no_grad():
        plain = torch.einsum("c,chw->hw", query, head(False).pixel_features(memory, res4, res3)[0])
        placed = torch.einsum("c,chw->hw", query, head(True).pixel_features(memory, res4, res3)[0])
    # Two interior pixels far from the border (beyond the convolutions' reach of the zero padding).
    a, b = (12, 14), (20, 34)
    assert plain[a].item() == pytest.approx(plain[b].item(), abs=1e-5)
    assert abs(placed[a].item() - placed[b].item()) > 1e-2  # the plain head: equal to 1e-5


def test_padding_is_left_out_of_the_encoding():
    """A frame padded to a larger size gets, over its own pixels, the encoding of the unpadded frame."""
    h = head(True)
    pe = h.position
    with torch.no_grad():
        small = h.pos_proj(pe(torch.zeros(1, 10, 13, dtype=torch.bool)))
        mask = torch.ones(1, 16, 20, dtype=torch.bool)
        mask[:, :10, :13] = False
        padded = h.pos_proj(pe(mask))
        unpadded_large = h.pos_proj(pe(torch.zeros(1, 16, 20, dtype=torch.bool)))
    torch.testing.assert_close(padded[..., :10, :13], small, rtol=0, atol=1e-6)
    assert (unpadded_large[..., :10, :13] - small).abs().max() > 0.1  # the extent does matter

    memory, res4, res3 = constant_inputs(2, 16, 20)
    with torch.no_grad():
        full = h.pixel_features(memory, res4, res3, mask8=mask.expand(2, -1, -1))
        h.pos_proj.weight.zero_()
        h.pos_proj.bias.zero_()
        content = h.pixel_features(memory, res4, res3)
    torch.testing.assert_close(full - content, padded.expand(2, -1, -1, -1), rtol=0, atol=1e-5)


def test_zero_projection_keeps_the_model_it_starts_from():
    """Fine-tuning with the position projection starts from exactly the outputs of the weights it loads."""
    torch.manual_seed(0)
    before = build_ifc(preset_config("demo")).eval()
    torch.manual_seed(5)
    after = build_ifc(preset_config("demo", mask_position=True)).eval()
    load_finetune_init(after, before.state_dict())
    assert after.mask_head.pos_proj.weight.abs().sum() == 0
    images = torch.randn(1, 3, 3, 64, 96)
    with torch.no_grad():
        a, b = before(images), after(images)
    assert torch.equal(a["pred_masks"], b["pred_masks"])
    assert torch.equal(a["pred_logits"], b["pred_logits"])


def test_config_flag_is_read_from_weights_and_checked():
    assert IFCConfig().mask_position is False  # the reference checkpoints have no position projection
    assert IFCConfig.from_dict({"num_classes": 40}).mask_position is False  # config.json files of round 1
    model = build_ifc(preset_config("demo", mask_position=True))
    assert infer_config(model.state_dict(), preset_config("demo")).mask_position is True
    plain = build_ifc(preset_config("demo"))
    assert infer_config(plain.state_dict(), preset_config("demo", mask_position=True)).mask_position is False
    with pytest.raises(ConfigError, match="mask_position"):
        check_config_fields({"mask_position": "yes"}, "config.json")
