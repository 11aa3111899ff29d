"""Checkpoint conversion and safe loading."""

from __future__ import annotations

import json
import os
import pickle
import stat

import numpy as np
import pytest
import torch
from conftest import REFERENCE, require
from faults import disk_full_for
from reference import model, rgb_frames
from tiny import tiny_model

from ifc_sdk import checkpoint, segment_frames
from ifc_sdk.checkpoint import (
    convert_checkpoint,
    convert_reference_state_dict,
    infer_config,
    load_checkpoint,
    load_pretrained,
    save_pretrained,
)
from ifc_sdk.errors import CheckpointError, OutputError
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


def test_saving_the_same_weights_writes_the_same_bytes(tmp_path):
    # A header key order that varies per save (safetensors writes its metadata from a hash map) would give
    # one model several sha256s; with two metadata keys, 8 saves agree by chance with probability 1/128.
    m = tiny_model()
    blobs = {(save_pretrained(m, tmp_path / str(i)) / "model.safetensors").read_bytes() for i in range(8)}
    assert len(blobs) == 1


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


# ----------------------------------------------------------------------------------------------- writing safely


def user_files(folder) -> dict[str, bytes]:
    """A user's own files in a folder a model is then written into."""
    files = {"notes.txt": b"my notes", "runs/log.txt": b"run 1", ".hidden": b"h"}
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return files


def test_save_into_a_folder_keeps_the_users_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    mine = user_files(out)
    save_pretrained(tiny_model(seed=0), out)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".hidden", "config.json", "model.safetensors", "notes.txt", "runs"]
    )
    with pytest.raises(OutputError, match="already holds a model .*overwrite=True") as info:
        save_pretrained(tiny_model(seed=1), out)
    assert info.value.path == str(out)
    first = (out / "model.safetensors").read_bytes()
    save_pretrained(tiny_model(seed=1), out, overwrite=True)
    assert (out / "model.safetensors").read_bytes() != first
    assert torch.equal(load_pretrained(out).query_embed.weight, tiny_model(seed=1).query_embed.weight)
    assert {name: (out / name).read_bytes() for name in mine} == mine


def test_a_config_json_of_the_user_is_not_replaced_silently(tmp_path):
    (tmp_path / "config.json").write_text('{"mine": true}')
    with pytest.raises(OutputError, match=r"already holds a model \(config.json\)"):
        save_pretrained(tiny_model(), tmp_path)
    assert (tmp_path / "config.json").read_text() == '{"mine": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_an_existing_file_as_the_folder_is_an_output_error(tmp_path):
    target = tmp_path / "model"
    target.write_text("user data")
    with pytest.raises(OutputError, match="is an existing file, not a folder"):
        save_pretrained(tiny_model(), target)
    with pytest.raises(OutputError, match="is an existing file, not a folder"):
        convert_checkpoint(require(REFERENCE / "r50_seed0.pth"), target)
    assert target.read_text() == "user data"


def test_temporary_files_of_a_killed_save_are_swept(tmp_path):
    stale = [
        tmp_path / ".model.safetensors.tmp-k1ll3dab.safetensors",
        tmp_path / ".config.json.tmp-k1ll3dab.json",
    ]
    kept = tmp_path / ".notes.txt.tmp-mine"
    for path in [*stale, kept]:
        path.write_bytes(b"left behind")
    save_pretrained(tiny_model(), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [kept.name, "config.json", "model.safetensors"]


def test_saved_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        save_pretrained(tiny_model(), tmp_path / "a" / "model")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [tmp_path / "a", *(tmp_path / "a").rglob("*")]}
    assert modes == {"a": 0o755, "model": 0o755, "model.safetensors": 0o644, "config.json": 0o644}


@pytest.mark.parametrize("failing", ["model.safetensors", "config.json"])
def test_disk_full_while_saving_keeps_the_previous_model(tmp_path, monkeypatch, failing):
    save_pretrained(tiny_model(seed=0), tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    disk_full_for(monkeypatch, failing)
    with pytest.raises(OutputError, match=f"{failing}: cannot write: no space left on the device") as info:
        save_pretrained(tiny_model(seed=1), tmp_path, overwrite=True)
    assert info.value.path == str(tmp_path / failing)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


# ----------------------------------------------------------------------------------------------- config.json sizes


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("num_queries", 4_000_000, "'num_queries' = 4000000 is outside the supported range [1, 1000]"),
        ("num_queries", 1e11, "'num_queries' must be an integer, got 100000000000.0"),
        ("hidden_dim", -64, "'hidden_dim' = -64 is outside"),
        ("num_dec_layers", "3", "'num_dec_layers' must be an integer, got '3'"),
        ("depth", 152, "'depth' = 152 is not one of [50, 101]"),
        ("pixel_std", [0, 1, 1], "'pixel_std' = [0, 1, 1] is not three finite (positive) numbers"),
        ("dropout", float("nan"), "'dropout' = nan is not a number in [0, 1)"),
        (
            "num_queries",
            1000,
            "num_queries = 1000 in the config, 6 in the weights",
        ),  # in range, not the file's
    ],
)
def test_config_sizes_are_checked_before_anything_is_allocated(tmp_path, monkeypatch, field, value, says):
    folder = save_pretrained(tiny_model(), tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, field: value}))

    def allocates(*args, **kwargs):
        raise AssertionError("allocated before the config was checked")

    monkeypatch.setattr(checkpoint, "build_ifc", allocates)
    monkeypatch.setattr(checkpoint, "load_file", allocates)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(folder)
    assert info.value.path == str(folder / "config.json") and says in str(info.value)
