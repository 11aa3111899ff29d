"""Starting a stage from a previous stage's model: optional new parts keep their initialisation, nothing else."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from ifc_sdk.checkpoint import save_pretrained
from ifc_sdk.errors import CheckpointError
from ifc_sdk.modeling import build_ifc, preset_config
from ifc_sdk.training.init_weights import load_initial_weights
from ifc_sdk.training.recipes import get_recipe


def test_position_parts_are_added_to_a_model_without_them(tmp_path):
    torch.manual_seed(0)
    save_pretrained(build_ifc(preset_config("demo")), tmp_path / "phase1")
    recipe = get_recipe("demo_ytvis_crowded")
    torch.manual_seed(1)
    model = build_ifc(recipe.model_config(num_classes=5))
    info = load_initial_weights(model, tmp_path / "phase1", recipe, verbose=False)
    decoder = [
        f"transformer.clip_decoder.layers.{i}.value_pos.{p}" for i in range(3) for p in ("bias", "weight")
    ]
    locate = [f"mask_head.locate.layers.{i}.{p}" for i in range(2) for p in ("bias", "weight")]
    assert info["added"] == sorted(locate + decoder)
    assert info["dropped"] == []
    assert model.mask_head.locate.layers[-1].weight.detach().abs().sum().item() == 0.0  # centred at the start
    assert model.transformer.clip_decoder.layers[0].value_pos.weight.detach().abs().sum().item() == 0.0


def test_other_missing_weights_are_still_refused(tmp_path):
    torch.manual_seed(0)
    state = build_ifc(preset_config("demo")).state_dict()
    del state["mask_head.lay1.weight"]
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "partial.safetensors")
    recipe = get_recipe("demo_ytvis_crowded")
    model = build_ifc(recipe.model_config(num_classes=5))
    with pytest.raises(CheckpointError, match="mask_head.lay1.weight"):
        load_initial_weights(model, tmp_path / "partial.safetensors", recipe, verbose=False)
