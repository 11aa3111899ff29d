"""The manifest of released IFC weights: one JSON entry per model, looked up by name or alias.

The manifest is one JSON file per model in the package ``ifc_sdk.weights_manifest`` (plus any folders or files
named in ``$IFC_SDK_MANIFEST``, separated by ``os.pathsep``). An entry names the architecture (a preset plus
config fields), the categories and input convention, what the authors report, the license, and its sources in
priority order (the kinds are described in `ifc_sdk.weights`). Whatever the source, the architecture and
metadata come from the entry; a source provides weights only.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ifc_sdk.checkpoint import WEIGHTS_NAME, check_config_fields
from ifc_sdk.errors import ConfigError, WeightsError
from ifc_sdk.modeling import IFCConfig, preset_config
from ifc_sdk.weights import cache

MANIFEST_PACKAGE = "ifc_sdk.weights_manifest"
ENV_MANIFEST = "IFC_SDK_MANIFEST"
SOURCE_KINDS = ("hf", "gdrive", "url", "bundled")
FORMATS = ("detectron2-pth", "ifc-safetensors")


@dataclass(frozen=True)
class Source:
    """One place an entry's weights can come from (see the module docstring for the kinds)."""

    kind: str
    format: str
    filename: str
    sha256: str | None = None
    size: int | None = None
    repo_id: str | None = None
    revision: str | None = None
    file_id: str | None = None
    url: str | None = None
    path: Path | None = None  # bundled: resolved against the manifest file's folder
    note: str | None = None

    @classmethod
    def from_dict(cls, data: dict, where: str, base: Path) -> Source:
        kind = data.get("kind")
        required = {
            "hf": ("repo_id", "revision"),
            "gdrive": ("file_id",),
            "url": ("url",),
            "bundled": ("path",),
        }
        if kind not in required:
            raise WeightsError(f"{where}: source kind {kind!r} is not one of {SOURCE_KINDS}")
        missing = [k for k in required[kind] if not data.get(k)]
        if missing:
            raise WeightsError(f"{where}: a {kind!r} source needs {missing}")
        fmt = data.get("format", "ifc-safetensors" if kind in ("hf", "bundled") else "detectron2-pth")
        if fmt not in FORMATS:
            raise WeightsError(f"{where}: format {fmt!r} is not one of {FORMATS}")
        path = None
        if kind == "bundled":
            path = (base / data["path"]).resolve()
            if not path.is_relative_to(base.resolve()):
                raise WeightsError(
                    f"{where}: bundled path {data['path']!r} leaves the manifest folder {base}"
                )
        if kind == "hf" and not re.fullmatch(r"[0-9a-f]{40}", str(data["revision"])):
            raise WeightsError(
                f"{where}: an hf source is pinned to a commit (40 hex digits), got {data['revision']!r}"
            )
        sha = data.get("sha256")
        if sha is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha):
            raise WeightsError(f"{where}: sha256 must be 64 hex digits or null, got {sha!r}")
        default_name = {
            "hf": WEIGHTS_NAME,
            "gdrive": f"{data.get('file_id')}.pth",
            "url": Path(str(data.get("url"))).name,
            "bundled": Path(str(data.get("path"))).name,
        }
        return cls(
            kind=kind,
            format=fmt,
            filename=data.get("filename") or default_name[kind],
            sha256=sha.lower() if sha else None,
            size=data.get("size"),
            repo_id=data.get("repo_id"),
            revision=data.get("revision"),
            file_id=data.get("file_id"),
            url=data.get("url"),
            path=path,
            note=data.get("note"),
        )

    def describe(self) -> str:
        return {
            "hf": f"hf://{self.repo_id}@{self.revision}/{self.filename}",
            "gdrive": f"Google Drive file {self.file_id}",
            "url": str(self.url),
            "bundled": f"bundled file {self.path}",
            "file": f"local file {self.path}",
        }[self.kind]

    def public_url(self) -> str | None:
        """Where a person can fetch the file by hand."""
        if self.kind == "hf":
            return f"https://huggingface.co/{self.repo_id}/resolve/{self.revision}/{self.filename}"
        if self.kind == "gdrive":
            return f"https://drive.google.com/uc?id={self.file_id}&export=download"
        return self.url

    @property
    def needs_network(self) -> bool:
        return self.kind in ("hf", "gdrive") or (self.kind == "url" and not str(self.url).startswith("file:"))

    def to_record(self) -> dict:
        keys = ("kind", "format", "filename", "sha256", "size", "repo_id", "revision", "file_id", "url")
        record = {k: getattr(self, k) for k in keys if getattr(self, k) is not None}
        return {**record, "path": str(self.path)} if self.path else record


@dataclass(frozen=True)
class ModelEntry:
    """A model of the manifest. ``config`` holds `IFCConfig` fields set on top of ``preset``."""

    name: str
    aliases: tuple[str, ...]
    description: str
    preset: str
    num_classes: int
    categories: tuple[str, ...] | None
    input: dict
    config: dict = field(default_factory=dict)
    inference: dict = field(default_factory=dict)
    reported: dict | None = None
    license: dict = field(default_factory=dict)
    sources: tuple[Source, ...] = ()
    manifest_file: Path | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict, manifest_file: Path) -> ModelEntry:
        if not isinstance(data, dict):
            raise WeightsError(f"{manifest_file}: an entry is a JSON {type(data).__name__}, not an object")
        where = f"{manifest_file}: entry {data.get('name')!r}"
        for key in ("name", "preset", "num_classes", "input", "sources"):
            if key not in data:
                raise WeightsError(f"{where}: missing field {key!r}")
        sources = tuple(
            Source.from_dict(s, f"{where} source {i}", manifest_file.parent)
            for i, s in enumerate(data["sources"])
        )
        known = {f for f in cls.__dataclass_fields__} - {"manifest_file", "extra", "sources"}
        entry = cls(
            **{k: data[k] for k in known - {"aliases", "categories", "description"} if k in data},
            aliases=tuple(data.get("aliases", ())),
            description=data.get("description", ""),
            categories=tuple(data["categories"]) if data.get("categories") else None,
            sources=sources,
            manifest_file=manifest_file,
            extra={k: v for k, v in data.items() if k not in known | {"sources", "schema_version"}},
        )
        try:
            entry.model_config()
        except (ConfigError, TypeError) as exc:
            raise WeightsError(f"{where}: its architecture is invalid ({exc})") from exc
        return entry

    def model_config(self, **overrides) -> IFCConfig:
        """The `IFCConfig` of this entry: preset, then ``config``, classes, categories and input convention."""
        fields = {
            **self.config,
            "num_classes": self.num_classes,
            "categories": list(self.categories) if self.categories else None,
        }
        fields.update(
            {k: self.input[k] for k in ("input_format", "pixel_mean", "pixel_std") if k in self.input}
        )
        fields.update(overrides)
        check_config_fields(fields, f"model '{self.name}'")
        return preset_config(self.preset, **fields)

    def drop_folder(self) -> Path:
        """Where a checkpoint fetched by hand is placed to be picked up (verified and converted) on load."""
        return cache.drop_folder(self.name)

    def cache_folder(self) -> Path:
        """Where this model is kept converted."""
        return cache.model_folder(self.name)


# ----------------------------------------------------------------------------------------------- the manifest


def _manifest_files() -> list[Path]:
    package = Path(importlib.import_module(MANIFEST_PACKAGE).__file__).parent
    files = sorted(package.glob("*.json"))
    for item in filter(None, os.environ.get(ENV_MANIFEST, "").split(os.pathsep)):
        path = Path(item).expanduser()
        if not path.exists():
            raise WeightsError(f"{ENV_MANIFEST} names {path}, which does not exist")
        files.extend(sorted(path.glob("*.json")) if path.is_dir() else [path])
    return files


@functools.lru_cache(maxsize=8)
def _load_manifest(key: tuple[tuple[str, float], ...]) -> dict[str, ModelEntry]:
    entries: dict[str, ModelEntry] = {}
    for file, _ in key:
        try:
            data = json.loads(Path(file).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise WeightsError(f"{file}: unreadable manifest ({exc})") from exc
        for item in data if isinstance(data, list) else [data]:
            entry = ModelEntry.from_dict(item, Path(file))
            for name in (entry.name, *entry.aliases):
                if normalize_name(name) in entries:
                    raise WeightsError(
                        f"{file}: model name {name!r} is also used by "
                        f"{entries[normalize_name(name)].manifest_file}"
                    )
                entries[normalize_name(name)] = entry
    return entries


def manifest() -> dict[str, ModelEntry]:
    """Every manifest entry, keyed by (normalised) name and alias."""
    return _load_manifest(tuple((str(f), f.stat().st_mtime) for f in _manifest_files()))


def normalize_name(name: str) -> str:
    """The key a name or alias is looked up by: case, surrounding blanks and ``_``/``-`` do not matter."""
    return name.strip().lower().replace("_", "-")


def model_names() -> list[str]:
    """The canonical name of every manifest entry, sorted."""
    return sorted({e.name for e in manifest().values()})


def get_model_entry(name: str) -> ModelEntry:
    """The manifest entry of a name or alias; unknown names list the valid ones."""
    entries = manifest()
    entry = entries.get(normalize_name(name))
    if entry is None:
        close = difflib.get_close_matches(normalize_name(name), list(entries), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        valid = ", ".join(
            f"{e.name} ({', '.join(e.aliases)})" if e.aliases else e.name
            for e in {id(e): e for e in entries.values()}.values()
        )
        raise WeightsError(
            f"unknown model {name!r}.{hint} Available models: {valid}. A local checkpoint "
            "(.pth, .safetensors or a folder) or hf://owner/repo[@revision] also works."
        )
    return entry
