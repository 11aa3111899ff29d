"""Loading a pretrained model by name or ``hf://`` URI (what `ifc_sdk.load_model` hands over to this package)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ifc_sdk import hub
from ifc_sdk.checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_pretrained
from ifc_sdk.errors import WeightsError
from ifc_sdk.modeling import IFC
from ifc_sdk.weights import cache
from ifc_sdk.weights.install import PATH_SUFFIXES, fetch
from ifc_sdk.weights.manifest import get_model_entry, manifest, model_names, normalize_name
from ifc_sdk.weights.structure import build_checked, read_state

_HF_URI = re.compile(r"hf://(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<rev>[\w./-]+))?/?")


def is_remote_source(source) -> bool:
    """True for what `load_pretrained_weights` handles: a manifest name (or unknown bare name) or an hf:// URI."""
    if not isinstance(source, str):
        return False
    if "://" in source:
        return True
    if Path(source).expanduser().exists():
        return False
    if normalize_name(source) in manifest():
        return True
    return not (os.sep in source or "/" in source or Path(source).suffix.lower() in PATH_SUFFIXES)


def parse_hf_uri(uri: str) -> tuple[str, str | None]:
    """``hf://owner/repo[@revision]`` -> (repo id, revision or None)."""
    match = _HF_URI.fullmatch(uri)
    if match is None:
        raise WeightsError(
            f"malformed Hugging Face source {uri!r}; expected hf://owner/repo or hf://owner/repo@revision"
        )
    return match.group("repo"), match.group("rev")


def load_pretrained_weights(source: str, *, progress: bool = True, **overrides) -> IFC:
    """Load a manifest model by name (downloading and caching it if needed) or ``hf://owner/repo[@rev]``."""
    if source.startswith("hf://"):
        repo_id, revision = parse_hf_uri(source)
        folder = hub.hf_snapshot(repo_id, revision, [WEIGHTS_NAME, CONFIG_NAME])
        if (folder / WEIGHTS_NAME).is_file():
            cache.check_hf_blob(folder / WEIGHTS_NAME)
        return load_pretrained(folder, **overrides)
    if "://" in source:
        raise WeightsError(
            f"unsupported source {source!r}: give a model name ({', '.join(model_names())}), "
            "hf://owner/repo[@revision], or a local .pth/.safetensors file or folder"
        )
    entry = get_model_entry(source)
    path = fetch(entry.name, progress=progress)
    fmt = "ifc-safetensors" if path.suffix == ".safetensors" else "detectron2-pth"
    return build_checked(entry, read_state(path, fmt), path, entry.model_config(**overrides))
