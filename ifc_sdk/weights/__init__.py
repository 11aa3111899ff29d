"""Pretrained IFC models: the manifest of released weights, their sources, the cache, and loading by name.

    >>> import ifc_sdk
    >>> model = ifc_sdk.load_model("r50")          # manifest name -> download, verify, convert, cache
    >>> ifc_sdk.list_models()                      # what exists and what is cached

Modules: `manifest` (entries, names and aliases), `structure` (exact keys and shapes of an entry's
architecture), `cache` (paths, the integrity record, the install lock), `install` (sources -> cache) and `load`
(name or ``hf://`` URI -> model); the bytes themselves arrive through `ifc_sdk.hub`. Source kinds:

* ``hf``: a file of a Hugging Face Hub repo at a pinned revision, in this SDK's safetensors format; it stays in
  the Hub's cache and is re-hashed on every load.
* ``gdrive`` / ``url``: a Google Drive file id or an http(s)/file URL; downloaded to a temporary file, checked
  (sha256 and size when the manifest knows them, otherwise the exact keys and shapes of the architecture, with
  the hash seen recorded), converted once to ``model.safetensors`` + ``config.json`` in the cache.
* ``bundled``: a file shipped beside the manifest JSON (path relative to it), loaded in place.

A ``.pth``/``.safetensors`` placed by hand in ``<cache>/downloads/<name>/`` is used before any download.
"""

from ifc_sdk.weights.cache import RECORD_NAME, cache_root
from ifc_sdk.weights.install import ModelInfo, cache_status, fetch, list_models, verify
from ifc_sdk.weights.load import is_remote_source, load_pretrained_weights, parse_hf_uri
from ifc_sdk.weights.manifest import (
    MANIFEST_PACKAGE,
    ModelEntry,
    Source,
    get_model_entry,
    manifest,
    model_names,
)
from ifc_sdk.weights.structure import build_checked, check_structure, expected_shapes

__all__ = [
    "MANIFEST_PACKAGE",
    "RECORD_NAME",
    "ModelEntry",
    "ModelInfo",
    "Source",
    "build_checked",
    "cache_root",
    "cache_status",
    "check_structure",
    "expected_shapes",
    "fetch",
    "get_model_entry",
    "is_remote_source",
    "list_models",
    "load_pretrained_weights",
    "manifest",
    "model_names",
    "parse_hf_uri",
    "verify",
]
