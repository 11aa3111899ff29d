"""Structure checks: exact keys and shapes of an entry's architecture, computed without allocating it."""

from __future__ import annotations

import json
import resource

import pytest
from weights_helpers import REAL, REFERENCE, isolated_fixture, one_thread_fixture  # noqa: F401 - fixtures

from ifc_sdk import weights
from ifc_sdk.checkpoint import reference_key_to_sdk
from ifc_sdk.errors import CheckpointError
from ifc_sdk.modeling import build_ifc, preset_config


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


def test_expected_shapes_equal_a_built_model() -> None:
    config = preset_config("demo", num_queries=7)
    built = {k: tuple(v.shape) for k, v in build_ifc(config).state_dict().items()}
    shapes = weights.expected_shapes(config)
    assert list(shapes) == list(built) and shapes == built
    assert shapes["query_embed.weight"] == (7, 64)


def test_expected_shapes_allocate_nothing() -> None:
    """1000 queries x hidden 2048 x 16384 feed-forward would be gigabytes if built: on the meta device, none."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    shapes = weights.expected_shapes(
        preset_config("r50", num_queries=1000, hidden_dim=2048, dim_feedforward=16_384, num_enc_layers=24)
    )
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert shapes["query_embed.weight"] == (1000, 2048)
    assert shapes["transformer.encoder.enc_layers.23.linear1.weight"] == (16_384, 2048)
    assert grown_mb < 200  # the parameters alone would be 24 x 2 x 2048 x 16384 x 4 bytes = 6.4 GB
