"""The mask head's optional location prior (``IFCConfig.mask_position``, not in the reference).

Without it the pixel features are translation-equivariant, so a query's mask logits are equal on two objects that
look the same: the shapes demo merged same-class (same-colour) objects into one track for this reason.
"""

from __future__ import annotations

import math

import pytest
import torch

from ifc_sdk.checkpoint import check_config_fields, infer_config
from ifc_sdk.errors import ConfigError
from ifc_sdk.modeling import IFCConfig, build_ifc, preset_config
from ifc_sdk.modeling.mask_head import PRIOR_START, MaskHead, normalized_grid
from ifc_sdk.training.init_weights import load_finetune_init

DIM = 16


def constant_inputs(n: int, h8: int, w8: int) -> tuple[torch.Tensor, ...]:
    """Spatially constant features: every pixel of the interior looks the same."""
    torch.manual_seed(1)
    memory = torch.randn(n, DIM, 1, 1).expand(n, DIM, h8 // 4, w8 // 4)
    res4 = torch.randn(n, 24, 1, 1).expand(n, 24, h8 // 2, w8 // 2)
    res3 = torch.randn(n, 12, 1, 1).expand(n, 12, h8, w8)
    return memory.contiguous(), res4.contiguous(), res3.contiguous()


def head(position: bool) -> MaskHead:
    torch.manual_seed(0)
    return MaskHead(DIM, (24, 12), num_groups=4, position=position).eval()


def test_a_query_selects_the_one_of_two_lookalikes_at_its_centre():
    memory, res4, res3 = constant_inputs(1, 32, 48)
    hs = torch.randn(1, 1, 1, DIM)  # (L, B, Q, C)
    plain, placed = head(False), head(True)
    placed.load_state_dict(plain.state_dict(), strict=False)
    beta = 20.0
    with torch.no_grad():  # centre (x, y) = (0.25, 0.5), strength beta
        placed.locate.layers[-1].weight.zero_()
        placed.locate.layers[-1].bias.copy_(torch.tensor([math.log(1 / 3), 0.0, math.log(math.expm1(beta))]))
        without = plain(hs, memory, res4, res3)[0, 0, 0, 0]  # (h8, w8)
        with_prior = placed(hs, memory, res4, res3)[0, 0, 0, 0]
    a, b = (16, 12), (16, 36)  # interior pixels at x = 12.5/48 and 36.5/48, y = 16.5/32
    assert without[a].item() == pytest.approx(without[b].item(), abs=1e-5)  # the cause of the merged twins
    d2 = [((x + 0.5) / 48 - 0.25) ** 2 + (16.5 / 32 - 0.5) ** 2 for x in (12, 36)]
    assert (with_prior[a] - with_prior[b]).item() == pytest.approx(beta * (d2[1] - d2[0]), rel=1e-4)


def test_grid_covers_each_frames_unpadded_extent():
    mask = torch.ones(1, 16, 20, dtype=torch.bool)
    mask[:, :10, :13] = False
    padded = normalized_grid(1, 16, 20, mask, torch.device("cpu"))
    small = normalized_grid(1, 10, 13, None, torch.device("cpu"))
    torch.testing.assert_close(padded[..., :10, :13], small, rtol=0, atol=1e-6)
    assert small[0, 0, 0, 0].item() == pytest.approx(0.5 / 13)  # x of the first pixel centre
    assert small[0, 1, -1, 0].item() == pytest.approx(9.5 / 10)  # y of the last row's centre


def test_fine_tuning_starts_from_the_loaded_model_plus_a_mild_centred_prior():
    torch.manual_seed(0)
    before = build_ifc(preset_config("demo")).eval()
    torch.manual_seed(5)
    after = build_ifc(preset_config("demo", mask_position=True)).eval()
    load_finetune_init(after, before.state_dict())
    images = torch.randn(1, 3, 3, 64, 96)
    with torch.no_grad():
        a, b = before(images), after(images)
    assert torch.equal(a["pred_logits"], b["pred_logits"])
    assert "pred_centres" not in a and b["pred_centres"].shape == (1, 10, 2)
    assert torch.equal(b["pred_centres"], torch.full((1, 10, 2), 0.5))  # centred at the start
    ys, xs = (torch.arange(8) + 0.5) / 8, (torch.arange(12) + 0.5) / 12
    prior = -PRIOR_START * ((xs[None, :] - 0.5) ** 2 + (ys[:, None] - 0.5) ** 2)  # (h8, w8)
    torch.testing.assert_close(
        b["pred_masks"] - a["pred_masks"], prior.expand_as(a["pred_masks"]), atol=1e-5, rtol=0
    )
    assert prior.min().item() > -1.0  # mild: under one logit even in the corners


def test_config_flag_is_read_from_weights_and_checked():
    assert IFCConfig().mask_position is False  # the reference checkpoints have no location prior
    assert IFCConfig.from_dict({"num_classes": 40}).mask_position is False  # config.json files of round 1
    model = build_ifc(preset_config("demo", mask_position=True))
    assert infer_config(model.state_dict(), preset_config("demo")).mask_position is True
    plain = build_ifc(preset_config("demo"))
    assert infer_config(plain.state_dict(), preset_config("demo", mask_position=True)).mask_position is False
    with pytest.raises(ConfigError, match="mask_position"):
        check_config_fields({"mask_position": "yes"}, "config.json")
