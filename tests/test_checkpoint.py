"""Checkpoint conversion and safe loading."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from conftest import REFERENCE, require
from reference import model, rgb_frames

from ifc_sdk import segment_frames
from ifc_sdk.checkpoint import (
    convert_checkpoint,
    convert_reference_state_dict,
    infer_config,
    load_checkpoint,
    load_pretrained,
    save_pretrained,
)
from ifc_sdk.errors import CheckpointError
from ifc_sdk.modeling import build_ifc, preset_config


def schema_state_dict(schema_name: str) -> dict[str, torch.Tensor]:
    """A random state dict with exactly the keys and shapes of a released checkpoint."""
    schema = json.loads(require(REFERENCE / schema_name).read_text())
    g = torch.Generator().manual_seed(0)
    state = {}
    for entry in schema["keys"]:
        shape = entry["shape"]
        value = (
            torch.rand(shape, generator=g) + 0.5
            if entry["key"].endswith("running_var")
            else torch.randn(shape, generator=g) * 0.02
        )
        state[entry["key"]] = value
    assert len(state) == schema["num_keys"]
    return state


@pytest.mark.parametrize(
    ("schema", "preset", "depth"),
    [
        ("schema_full_r50_base_ytvis.json", "r50", 50),
        ("schema_full_r101_ytvis.json", "r101", 101),
    ],
)
def test_full_size_schema_converts_and_loads_strictly(tmp_path, schema, preset, depth):
    ref_state = schema_state_dict(schema)
    pth = tmp_path / "model_final.pth"
    torch.save({"model": ref_state, "iteration": 1}, pth)
    out = convert_checkpoint(pth, tmp_path / "converted", preset=preset)
    loaded = load_pretrained(out)
    cfg = loaded.config
    assert (cfg.depth, cfg.hidden_dim, cfg.num_queries, cfg.num_classes, cfg.dim_feedforward) == (
        depth,
        256,
        100,
        40,
        2048,
    )
    assert cfg == preset_config(preset)  # the released sizes are the preset's defaults
    sdk = convert_reference_state_dict(ref_state)
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, sdk[key]), key


def test_saved_format_reloads_bit_identical(tmp_path):
    m = model("r50_seed0")
    folder = save_pretrained(m, tmp_path / "r50")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    reloaded = load_checkpoint(folder)
    frames = rgb_frames("r50_seed0")[:4]
    a = segment_frames(m, frames, window=3, size=None)
    b = segment_frames(reloaded, frames, window=3, size=None)
    np.testing.assert_array_equal([t.class_probs for t in a.tracks], [t.class_probs for t in b.tracks])
    assert [t.frame_masks for t in a.tracks] == [t.frame_masks for t in b.tracks]


def test_preset_supplies_input_convention():
    m = load_checkpoint(require(REFERENCE / "r101_seed1.pth"))
    assert m.config.input_format == "BGR" and m.config.stride_in_1x1 and m.config.depth == 101
    assert m.config.pixel_std == (1.0, 1.0, 1.0)


def test_non_finite_weights_rejected(tmp_path):
    m = build_ifc(preset_config("demo"))
    with torch.no_grad():
        m.query_embed.weight[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN"):
        save_pretrained(m, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickle_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"model": {"x": torch.zeros(1)}, "payload": Evil()}, f)
    with pytest.raises(CheckpointError, match="refused to unpickle") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    state = build_ifc(preset_config("demo")).state_dict()
    state = {k: v for k, v in state.items() if not k.startswith("mask_head.adapter1")}
    state["mask_head.extra.weight"] = torch.zeros(1)
    from ifc_sdk.checkpoint import model_from_state_dict

    with pytest.raises(CheckpointError) as info:
        model_from_state_dict(state, preset_config("demo"), tmp_path / "x.safetensors")
    message = str(info.value)
    assert "mask_head.adapter1.weight" in message and "mask_head.extra.weight" in message


def test_not_an_ifc_checkpoint(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, path)
    with pytest.raises(CheckpointError, match="not an IFC checkpoint"):
        load_checkpoint(path)


def test_infer_config_reads_sizes():
    m = build_ifc(preset_config("demo", num_queries=7, num_dec_layers=2))
    cfg = infer_config(m.state_dict(), preset_config("r50"))
    assert (cfg.num_queries, cfg.num_dec_layers, cfg.hidden_dim, cfg.num_classes) == (7, 2, 64, 5)
