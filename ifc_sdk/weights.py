"""Pretrained IFC models: the manifest of released weights, their sources, the cache, and loading by name.

    >>> import ifc_sdk
    >>> model = ifc_sdk.load_model("r50")          # manifest name -> download, verify, convert, cache
    >>> ifc_sdk.list_models()                      # what exists and what is cached

The manifest is one JSON file per model in the package ``ifc_sdk.weights_manifest`` (plus any folders or files
named in ``$IFC_SDK_MANIFEST``, separated by ``os.pathsep``). An entry names the architecture (a preset plus
config fields), the categories and input convention, what the authors report, the license, and its sources in
priority order. Source kinds:

* ``hf``: a file of a Hugging Face Hub repo at a pinned revision, in this SDK's safetensors format; it stays in
  the Hub's cache and is re-hashed on every load.
* ``gdrive`` / ``url``: a Google Drive file id or an http(s)/file URL; downloaded to a temporary file, checked
  (sha256 and size when the manifest knows them, otherwise the exact keys and shapes of the architecture, with
  the hash seen recorded), converted once to ``model.safetensors`` + ``config.json`` in the cache.
* ``bundled``: a file shipped beside the manifest JSON (path relative to it), loaded in place.

Whatever the source, the architecture and metadata come from the manifest entry; a source provides weights only.
A ``.pth``/``.safetensors`` placed by hand in ``<cache>/downloads/<name>/`` is used before any download.
"""

from __future__ import annotations

import datetime
import difflib
import functools
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ifc_sdk import hub
from ifc_sdk.checkpoint import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    check_finite,
    convert_reference_state_dict,
    load_pretrained,
    load_state_dict_strict,
    read_pth,
    save_pretrained,
)
from ifc_sdk.errors import CheckpointError, WeightsError
from ifc_sdk.modeling import IFC, IFCConfig, build_ifc, preset_config

logger = logging.getLogger(__name__)

MANIFEST_PACKAGE = "ifc_sdk.weights_manifest"
ENV_MANIFEST = "IFC_SDK_MANIFEST"
RECORD_NAME = "ifc_sdk_source.json"
SOURCE_KINDS = ("hf", "gdrive", "url", "bundled")
FORMATS = ("detectron2-pth", "ifc-safetensors")
_HF_URI = re.compile(r"hf://(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<rev>[\w./-]+))?/?")
_PATH_SUFFIXES = {".pth", ".pt", ".pkl", ".bin", ".safetensors"}


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
        except Exception as exc:
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
        return preset_config(self.preset, **{**fields, **overrides})

    def drop_folder(self) -> Path:
        """Where a checkpoint fetched by hand is placed to be picked up (verified and converted) on load."""
        return hub.cache_root() / "downloads" / self.name

    def cache_folder(self) -> Path:
        return hub.cache_root() / "models" / self.name


# ----------------------------------------------------------------------------------------------- the manifest


def _manifest_files() -> list[Path]:
    import importlib

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
                if _normalize(name) in entries:
                    raise WeightsError(
                        f"{file}: model name {name!r} is also used by "
                        f"{entries[_normalize(name)].manifest_file}"
                    )
                entries[_normalize(name)] = entry
    return entries


def manifest() -> dict[str, ModelEntry]:
    """Every manifest entry, keyed by (normalised) name and alias."""
    return _load_manifest(tuple((str(f), f.stat().st_mtime) for f in _manifest_files()))


def _normalize(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def model_names() -> list[str]:
    return sorted({e.name for e in manifest().values()})


def get_model_entry(name: str) -> ModelEntry:
    """The manifest entry of a name or alias; unknown names list the valid ones."""
    entries = manifest()
    entry = entries.get(_normalize(name))
    if entry is None:
        close = difflib.get_close_matches(_normalize(name), list(entries), n=3)
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


# ----------------------------------------------------------------------------------------------- structure


def expected_shapes(config: IFCConfig) -> dict[str, tuple[int, ...]]:
    """Every state-dict key of the architecture of ``config`` with its shape."""
    fields = {k: v for k, v in config.to_dict().items() if k != "categories"}
    return dict(_expected_shapes(json.dumps(fields, sort_keys=True)))


@functools.lru_cache(maxsize=16)
def _expected_shapes(fields: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    with torch.no_grad():
        model = build_ifc(IFCConfig.from_dict(json.loads(fields)))
    return tuple((k, tuple(v.shape)) for k, v in model.state_dict().items())


def check_structure(
    entry: ModelEntry,
    shapes: dict[str, tuple[int, ...]],
    path: str | os.PathLike | None,
    config: IFCConfig | None = None,
    expected: dict[str, tuple[int, ...]] | None = None,
) -> None:
    """Refuse weights whose keys or shapes differ from the entry's architecture, naming the differences."""
    expected = expected or expected_shapes(config or entry.model_config())
    missing = [k for k in expected if k not in shapes]
    unexpected = [k for k in shapes if k not in expected]
    wrong = [
        f"{k}: file {tuple(shapes[k])} vs model {v}"
        for k, v in expected.items()
        if k in shapes and tuple(shapes[k]) != v
    ]
    if not (missing or unexpected or wrong):
        return
    res4 = {int(m.group(1)) for k in shapes if (m := re.match(r"backbone\.res4\.(\d+)\.", k))}
    depth = {6: "ResNet-50", 23: "ResNet-101"}.get(len(res4), f"{len(res4)} res4 blocks")
    parts = [
        f"{len(x)} {what}, first: {x[:5]}"
        for x, what in (
            (missing, "missing key(s)"),
            (unexpected, "unexpected key(s)"),
            (wrong, "shape mismatch(es)"),
        )
        if x
    ]
    raise CheckpointError(
        path,
        f"wrong architecture for model '{entry.name}' (preset {entry.preset}, "
        f"{entry.num_classes} classes; the file looks like {depth}): " + "; ".join(parts),
    )


def build_checked(
    entry: ModelEntry,
    state: dict[str, torch.Tensor],
    path: str | os.PathLike | None,
    config: IFCConfig | None = None,
) -> IFC:
    """The entry's model with ``state`` loaded, after checking the exact keys and shapes; in eval mode."""
    model = build_ifc(config or entry.model_config())
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    check_structure(entry, {k: tuple(v.shape) for k, v in state.items()}, path, expected=expected)
    check_finite(state, path)
    load_state_dict_strict(model, state, path)
    return model.eval()


def _safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(path, f"not a readable safetensors file ({exc})") from exc


def _read_state(path: Path, fmt: str) -> dict[str, torch.Tensor]:
    """SDK-keyed tensors of a downloaded file; a .pth is unpickled with weights_only (never trusted)."""
    if fmt == "detectron2-pth":
        return convert_reference_state_dict(read_pth(path, trusted=False))
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(path, f"not a readable safetensors file ({exc})") from exc


# ----------------------------------------------------------------------------------------------- the cache


def _read_record(entry: ModelEntry) -> dict | None:
    try:
        return json.loads((entry.cache_folder() / RECORD_NAME).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _verify_converted(entry: ModelEntry) -> dict:
    """Re-hash the converted files against the hashes recorded when they were written."""
    folder, record = entry.cache_folder(), _read_record(entry)
    if record is None:
        raise WeightsError(f"{folder}: no complete cached copy of '{entry.name}' (missing {RECORD_NAME})")
    for name, meta in record.get("files", {}).items():
        path = folder / name
        if not path.is_file():
            raise WeightsError(f"{path}: cached file is missing")
        try:
            hub.check_file(path, sha256=meta["sha256"], size=meta["size"], what=f"cached {name}")
        except WeightsError as exc:
            raise WeightsError(
                f"{exc}. The cache of '{entry.name}' is damaged: run `ifc-sdk weights download "
                f"{entry.name} --force` (or delete {folder})."
            ) from None
    return record


def _drop_files(entry: ModelEntry) -> list[Path]:
    folder = entry.drop_folder()
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix in _PATH_SUFFIXES
    )


def _hf_cached(entry: ModelEntry) -> tuple[Source, Path] | None:
    for source in entry.sources:
        if source.kind == "hf":
            path = hub.hf_cached_file(source.repo_id, source.filename, source.revision)
            if path is not None:
                return source, path
    return None


def cache_status(entry: ModelEntry) -> str:
    """One of: cached, hf-cache, bundled, placed (a file placed by hand, not converted yet), not cached."""
    if (entry.cache_folder() / RECORD_NAME).is_file():
        return "cached"
    if _hf_cached(entry):
        return "hf-cache"
    if any(s.kind == "bundled" and s.path.exists() for s in entry.sources):
        return "bundled"
    return "placed" if _drop_files(entry) else "not cached"


@dataclass(frozen=True)
class ModelInfo:
    """A row of `list_models`."""

    name: str
    aliases: tuple[str, ...]
    description: str
    preset: str
    num_classes: int
    sources: tuple[str, ...]
    status: str
    cache_path: Path

    @property
    def cached(self) -> bool:
        return self.status in ("cached", "hf-cache", "bundled")


def list_models() -> list[ModelInfo]:
    """Every model of the manifest with its sources and whether it is available without a download."""
    entries = sorted({e.name: e for e in manifest().values()}.values(), key=lambda e: e.name)
    return [
        ModelInfo(
            e.name,
            e.aliases,
            e.description,
            e.preset,
            e.num_classes,
            tuple(s.kind for s in e.sources),
            cache_status(e),
            e.cache_folder(),
        )
        for e in entries
    ]


# ----------------------------------------------------------------------------------------------- fetching


def _install(entry: ModelEntry, tmp: Path, source: Source) -> Path:
    """Check a local file of ``entry``, convert it into the cache and record the hashes; return the weights.

    A download is checked against the sha256/size of its source when the manifest has them; a file given by
    hand is "published" when its hash is one the manifest lists. Either way the architecture is checked.
    """
    seen = hub.check_file(tmp, sha256=source.sha256, size=source.size, what=source.describe())
    published = (
        source.sha256
        if source.kind != "file"
        else (seen if seen in {s.sha256 for s in entry.sources} else None)
    )
    state = _read_state(tmp, source.format)
    model = build_checked(entry, state, tmp)
    folder = entry.cache_folder()
    previous = _read_record(entry)
    if previous and previous["original"]["sha256"] != seen:
        logger.warning(
            "%s: the source file changed since it was cached (sha256 %s, was %s)",
            entry.name,
            seen,
            previous["original"]["sha256"],
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.staging-", dir=folder.parent))
    try:
        out = save_pretrained(model, staging / "model")
        record = {
            "schema_version": 1,
            "model": entry.name,
            "source": source.to_record(),
            "original": {
                "filename": tmp.name if source.kind == "file" else source.filename,
                "sha256": seen,
                "size": tmp.stat().st_size,
                "published_sha256": published,
                "verified_by": "sha256" if published else "structure (no published sha256)",
            },
            "files": {
                n: {"sha256": hub.sha256_file(out / n), "size": (out / n).stat().st_size}
                for n in (WEIGHTS_NAME, CONFIG_NAME)
            },
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        (out / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")
        hub.install_folder(out, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not published:
        logger.info(
            "%s: no published sha256 for %s; verified by structure, recorded sha256 %s",
            entry.name,
            source.describe(),
            seen,
        )
    return folder / WEIGHTS_NAME


def _check_hf(source: Source, path: Path) -> None:
    """A Hub file against its blob name (the sha256 of LFS files) and the manifest's sha256 and size."""
    digest = hub.check_hf_blob(path)
    if source.sha256 is not None and digest != source.sha256:
        raise WeightsError(f"{source.describe()} has sha256 {digest}, expected {source.sha256} ({path})")
    if source.size is not None and path.stat().st_size != source.size:
        raise WeightsError(
            f"{source.describe()} is {path.stat().st_size} bytes, expected {source.size} ({path})"
        )


def _fetch_source(entry: ModelEntry, source: Source, progress: bool) -> Path:
    if source.kind == "hf":
        path = hub.hf_file(source.repo_id, source.filename, source.revision, progress=progress)
        _check_hf(source, path)
        check_structure(entry, _safetensors_shapes(path), path)
        return path
    if source.kind == "bundled":
        if not source.path.is_file():
            raise WeightsError(f"bundled file {source.path} is missing from the installation")
        hub.check_file(source.path, sha256=source.sha256, size=source.size, what=source.describe())
        return source.path
    if source.kind == "file":  # a file placed by hand: read in place, never removed
        return _install(entry, source.path, source)
    downloads = entry.drop_folder() / ".partial"
    if source.kind == "gdrive":
        tmp = hub.download_gdrive(source.file_id, downloads, source.filename, progress=progress)
    else:
        tmp = hub.download_url(source.url, downloads, source.filename, progress=progress)
    try:
        return _install(entry, tmp, source)
    finally:
        tmp.unlink(missing_ok=True)


def _local_source(path: Path) -> Source:
    fmt = "ifc-safetensors" if path.suffix == ".safetensors" else "detectron2-pth"
    return Source(kind="file", format=fmt, filename=path.name, path=path.resolve())


def _how_to_fill(entry: ModelEntry) -> str:
    urls = [u for s in entry.sources if s.kind != "bundled" and (u := s.public_url())]
    where = (
        f"download it on a connected machine ({' or '.join(urls)})"
        if urls
        else "obtain the checkpoint file (it is not available for download)"
    )
    return (
        f"To fill the cache by hand: {where}, then place the file in {entry.drop_folder()}/ (it is verified "
        f"and converted on first load) or run `ifc-sdk weights download {entry.name} --from FILE`; or copy "
        f"a cache folder made elsewhere (`ifc-sdk weights download {entry.name}`) to {entry.cache_folder()}."
    )


def fetch(
    name: str, *, force: bool = False, progress: bool = True, from_file: str | os.PathLike | None = None
) -> Path:
    """Make model ``name`` available locally and return its verified ``model.safetensors``.

    Tries, in order: the cache (unless ``force``), files placed in the model's drop folder, then the manifest's
    sources. ``from_file`` imports a checkpoint fetched by hand instead. A failed attempt never touches a good
    cached copy.
    """
    entry = get_model_entry(name)
    if from_file is not None:
        path = Path(from_file).expanduser()
        if not path.is_file():
            raise WeightsError(f"{path}: no such file")
        return _install(entry, path, _local_source(path))
    if not force:
        located = _locate(entry)
        if located is not None:
            return located
    candidates = [_local_source(p) for p in _drop_files(entry)] + list(entry.sources)
    offline, failures = hub.offline_reason(), []
    last: Exception | None = None
    for source in candidates:
        if offline and source.needs_network and source.kind != "hf":
            failures.append(f"{source.describe()}: skipped, downloads are disabled ({offline})")
            continue
        try:
            return _fetch_source(entry, source, progress)
        except (WeightsError, CheckpointError) as exc:
            failures.append(f"{source.describe()}: {exc}")
            last = exc
    if not candidates:
        failures.append("the manifest lists no download source for it")
    state = (
        f"downloads are disabled ({offline}) and it is not in the cache"
        if offline
        else "it could not be fetched"
    )
    raise WeightsError(
        f"model '{entry.name}': {state} ({entry.cache_folder()}).\n  - "
        + "\n  - ".join(failures)
        + f"\n{_how_to_fill(entry)}"
    ) from last


def _locate(entry: ModelEntry) -> Path | None:
    """A verified local copy of ``entry``'s weights without any download, or None."""
    if (entry.cache_folder() / RECORD_NAME).is_file():
        _verify_converted(entry)
        return entry.cache_folder() / WEIGHTS_NAME
    hit = _hf_cached(entry)
    if hit is not None:
        _check_hf(*hit)
        return hit[1]
    for source in entry.sources:
        if source.kind == "bundled" and source.path.is_file():
            return _fetch_source(entry, source, progress=False)
    return None


def verify(name: str) -> dict:
    """Check the local copy of model ``name`` (hashes and architecture); return what was checked."""
    entry = get_model_entry(name)
    path = _locate(entry)
    if path is None:
        raise WeightsError(
            f"model '{entry.name}' is not cached ({entry.cache_folder()}); run "
            f"`ifc-sdk weights download {entry.name}` first"
        )
    check_structure(entry, _safetensors_shapes(path), path)
    record = _read_record(entry) if path.parent == entry.cache_folder() else None
    return {
        "model": entry.name,
        "path": str(path),
        "sha256": hub.sha256_file(path),
        "source": record["source"] if record else None,
        "original": record["original"] if record else None,
    }


# ----------------------------------------------------------------------------------------------- loading


def is_remote_source(source) -> bool:
    """True for what `load_pretrained_weights` handles: a manifest name (or unknown bare name) or an hf:// URI."""
    if not isinstance(source, str):
        return False
    if "://" in source:
        return True
    if Path(source).expanduser().exists():
        return False
    if _normalize(source) in manifest():
        return True
    return not (os.sep in source or "/" in source or Path(source).suffix.lower() in _PATH_SUFFIXES)


def parse_hf_uri(uri: str) -> tuple[str, str | None]:
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
            hub.check_hf_blob(folder / WEIGHTS_NAME)
        return load_pretrained(folder, **overrides)
    if "://" in source:
        raise WeightsError(
            f"unsupported source {source!r}: give a model name ({', '.join(model_names())}), "
            "hf://owner/repo[@revision], or a local .pth/.safetensors file or folder"
        )
    entry = get_model_entry(source)
    path = fetch(entry.name, progress=progress)
    fmt = "ifc-safetensors" if path.suffix == ".safetensors" else "detectron2-pth"
    config = entry.model_config(**overrides)
    return build_checked(entry, _read_state(path, fmt), path, config)
