"""The manifest: shipped entries, names and aliases, validation of entries (including their sizes)."""

from __future__ import annotations

import json

import pytest
from weights_helpers import (  # noqa: F401 - fixtures
    MANIFEST_DIR,
    REAL,
    YTVIS19_FIRST_LAST,
    isolated_fixture,
    one_thread_fixture,
    write_entry,
)

import ifc_sdk
from ifc_sdk import weights
from ifc_sdk.errors import WeightsError
from ifc_sdk.modeling import PRESETS


def test_shipped_manifest_entries() -> None:
    assert weights.model_names() == ["ifc-r101-ytvis19", "ifc-r50-coco", "ifc-r50-ytvis19", "shapes-demo"]
    for alias, name in [
        ("r50", "ifc-r50-ytvis19"),
        ("R50-YTVIS19", "ifc-r50-ytvis19"),
        ("ifc_r50", "ifc-r50-ytvis19"),
        ("r101", "ifc-r101-ytvis19"),
        ("r101-ytvis19", "ifc-r101-ytvis19"),
        ("r50-coco", "ifc-r50-coco"),
    ]:
        assert weights.get_model_entry(alias).name == name
    for preset, (name, _) in REAL.items():
        entry = weights.get_model_entry(name)
        assert entry.preset == preset and entry.num_classes == 40 and len(entry.categories) == 40
        assert entry.categories[:2] + entry.categories[-2:] == YTVIS19_FIRST_LAST
        assert len(set(entry.categories)) == 40
        config, preset_config = entry.model_config(), PRESETS[preset]
        assert (config.input_format, config.pixel_mean, config.pixel_std) == (
            preset_config.input_format,
            preset_config.pixel_mean,
            preset_config.pixel_std,
        )
        assert (entry.input["min_size_test"], entry.input["max_size_test"]) == (360, 1333)
        assert entry.license["code"] == "Apache-2.0" and "authors" in entry.license["weights"]
        assert entry.reported["by"] == "the authors"
        assert [s.kind for s in entry.sources] == ["gdrive", "gdrive"]
        assert all(
            s.sha256 is None and s.size is None and s.format == "detectron2-pth" for s in entry.sources
        )
        assert "structure" in entry.extra["reference_checkpoint"]["integrity"]
    r50, r101 = weights.get_model_entry("r50"), weights.get_model_entry("r101")
    assert r50.sources[0].file_id == "1dwkg91omYLmcIA7ze6MZdZj4H5mWT5Fv"
    assert r101.sources[0].file_id == "1s2GnnpDqYIcP-_wX1Rm5vO3VnrfotaCv"
    assert [(r["window"], r["AP"], r["fps"]) for r in r50.reported["results"]] == [
        (5, 41.6, 46.5),
        (36, 42.8, 107.1),
    ]
    assert [(r["window"], r["AP"], r["fps"]) for r in r101.reported["results"]] == [(36, 44.6, 89.4)]
    coco = weights.get_model_entry("r50-coco")
    assert coco.num_classes == 80 and len(coco.categories) == 80 and coco.reported is None


def test_manifest_validation_errors(isolated) -> None:
    folder = isolated / "manifest"
    write_entry(folder, "dup", "r50", [], aliases=["r50"])
    with pytest.raises(WeightsError, match="'r50' is also used"):
        weights.manifest()
    (folder / "dup.json").unlink()
    write_entry(folder, "escape", "r50", [{"kind": "bundled", "path": "../outside.safetensors"}])
    with pytest.raises(WeightsError, match="leaves the manifest folder"):
        weights.manifest()
    (folder / "escape.json").unlink()
    write_entry(folder, "escape", "r50", [{"kind": "ftp", "url": "ftp://x"}])
    with pytest.raises(WeightsError, match="source kind 'ftp'"):
        weights.manifest()
    write_entry(folder, "escape", "r50", [{"kind": "hf", "repo_id": "me/model", "revision": "main"}])
    with pytest.raises(WeightsError, match="pinned to a commit"):
        weights.manifest()


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(WeightsError) as info:
        ifc_sdk.load_model("r5O", device="cpu")
    message = str(info.value)
    assert "unknown model 'r5O'" in message and "Did you mean" in message
    for name in weights.model_names():
        assert name in message


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("num_queries", 4_000_000, "'num_queries' = 4000000 is outside the supported range [1, 1000]"),
        ("hidden_dim", 1e11, "'hidden_dim' must be an integer, got 100000000000.0"),
        ("num_dec_layers", -1, "'num_dec_layers' = -1 is outside"),
        ("dim_feedforward", True, "'dim_feedforward' must be an integer, got True"),
    ],
)
def test_entry_sizes_are_bounded(isolated, field, value, says) -> None:
    """An entry asking for an absurd architecture is refused when the manifest is read, before any build."""
    folder = isolated / "manifest"
    entry = write_entry(folder, "huge", "r50", [])
    entry["config"] = {**entry["config"], field: value}
    (folder / "huge.json").write_text(json.dumps(entry))
    with pytest.raises(WeightsError, match="architecture is invalid") as info:
        weights.manifest()
    assert str(folder / "huge.json") in str(info.value) and says in str(info.value)


def test_overrides_are_bounded_before_anything_is_fetched(isolated) -> None:
    with pytest.raises(ifc_sdk.ConfigError, match="model 'ifc-r50-ytvis19': field 'num_queries' = 4000000"):
        weights.get_model_entry("r50").model_config(num_queries=4_000_000)
