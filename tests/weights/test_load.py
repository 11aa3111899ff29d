"""Loading by name or ``hf://`` URI: what counts as a remote source, URI parsing, empty sources."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny import tiny_model
from weights_helpers import isolated_fixture, one_thread_fixture  # noqa: F401 - fixtures

import ifc_sdk
from ifc_sdk import weights
from ifc_sdk.checkpoint import load_checkpoint, save_pretrained
from ifc_sdk.errors import ConfigError, WeightsError


def test_is_remote_source(tmp_path) -> None:
    (tmp_path / "r50").mkdir()
    assert weights.is_remote_source("r50") and weights.is_remote_source("ifc-r101-ytvis19")
    assert weights.is_remote_source("hf://owner/repo@abc") and weights.is_remote_source("no-such-model")
    assert not weights.is_remote_source(str(tmp_path / "r50"))  # an existing path is local
    assert not weights.is_remote_source("missing/model.pth") and not weights.is_remote_source(
        "model.safetensors"
    )
    assert not weights.is_remote_source(Path("r50"))
    assert weights.parse_hf_uri("hf://owner/repo@v1.0") == ("owner/repo", "v1.0")
    assert weights.parse_hf_uri("hf://owner/repo") == ("owner/repo", None)
    with pytest.raises(WeightsError, match="malformed"):
        weights.parse_hf_uri("hf://just-a-name")


def test_empty_source_is_a_config_error(tmp_path, monkeypatch) -> None:
    """Not the current folder taken as a model folder (here it holds one, which used to be loaded)."""
    save_pretrained(tiny_model(), tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="empty"):
        ifc_sdk.load_model("", device="cpu")
    with pytest.raises(ConfigError, match="empty"):
        load_checkpoint("")
