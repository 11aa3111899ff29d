"""Structure checks: exact keys and shapes of an entry's architecture."""

from __future__ import annotations

import json

import pytest
from weights_helpers import REAL, REFERENCE, isolated_fixture, one_thread_fixture  # noqa: F401 - fixtures

from ifc_sdk import weights
from ifc_sdk.checkpoint import reference_key_to_sdk
from ifc_sdk.errors import CheckpointError


@pytest.mark.parametrize("preset", ["r50", "r101"])
def test_real_entries_match_full_size_reference_schemas(preset: str) -> None:
    name, schema_file = REAL[preset]
    path = REFERENCE / schema_file
    if not path.exists():
        pytest.skip(f"{path} not found")
    schema = json.loads(path.read_text())
    shapes = {new: tuple(k["shape"]) for k in schema["keys"] if (new := reference_key_to_sdk(k["key"]))}
    entry = weights.get_model_entry(name)
    assert weights.expected_shapes(entry.model_config()) == shapes
    weights.check_structure(entry, shapes, path)  # passes
    meta = entry.extra["reference_checkpoint"]
    assert (meta["state_dict_keys"], meta["parameters"]) == (schema["num_keys"], schema["num_parameters"])
    config = schema["config"]
    assert entry.input["input_format"] == config["INPUT.FORMAT"]
    assert list(entry.model_config().pixel_mean) == config["PIXEL_MEAN"]
    assert entry.input["min_size_test"] == config["INPUT.MIN_SIZE_TEST"]
    other = REAL["r101" if preset == "r50" else "r50"][0]
    with pytest.raises(CheckpointError, match="wrong architecture"):
        weights.check_structure(weights.get_model_entry(other), shapes, path)
