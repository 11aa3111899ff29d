"""Fetching and installing: a manifest model's weights from its sources into the cache, verified and converted.

Order of attempts (`fetch`): the cache, files placed by hand in ``<cache>/downloads/<name>/``, then the entry's
sources in priority order. Installing a model holds its cache lock (`cache.install_lock`), so two processes
fetching the same model serialise and the second finds the first one's copy; a failed attempt never touches a
good cached copy.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ifc_sdk import hub
from ifc_sdk.checkpoint import WEIGHTS_NAME, safetensors_shapes, save_pretrained
from ifc_sdk.errors import CheckpointError, ConfigError, OutputError, WeightsError
from ifc_sdk.io.atomic import staging_dir
from ifc_sdk.weights import cache
from ifc_sdk.weights.manifest import ModelEntry, Source, get_model_entry, manifest
from ifc_sdk.weights.structure import build_checked, check_structure, read_state

logger = logging.getLogger(__name__)

PATH_SUFFIXES = {".pth", ".pt", ".pkl", ".bin", ".safetensors"}


def _install(entry: ModelEntry, original: Path, source: Source, *, trusted: bool = False) -> Path:
    """Check a local file of ``entry``, convert it into the cache and record the hashes; return the weights.

    A download is checked against the sha256/size of its source when the manifest has them; a file given by
    hand is "published" when its hash is one the manifest lists. Either way the architecture is checked.
    Called with the entry's install lock held.
    """
    seen = cache.check_file(original, sha256=source.sha256, size=source.size, what=source.describe())
    published = (
        source.sha256
        if source.kind != "file"
        else (seen if seen in {s.sha256 for s in entry.sources} else None)
    )
    model = build_checked(entry, read_state(original, source.format, trusted=trusted), original)
    folder = entry.cache_folder()
    try:
        previous = cache.read_record(entry.name)
    except WeightsError:
        previous = None  # a malformed record is what this install replaces
    if previous and previous["original"].get("sha256") != seen:
        logger.warning(
            "%s: the source file changed since it was cached (sha256 %s, was %s)",
            entry.name,
            seen,
            previous["original"].get("sha256"),
        )
    with staging_dir(folder) as staging:
        save_pretrained(model, staging)
        cache.write_record(
            staging,
            {
                "schema_version": cache.RECORD_VERSION,
                "model": entry.name,
                "source": source.to_record(),
                "original": {
                    "filename": original.name if source.kind == "file" else source.filename,
                    "sha256": seen,
                    "size": original.stat().st_size,
                    "published_sha256": published,
                    "verified_by": "sha256" if published else "structure (no published sha256)",
                },
                "files": cache.file_entries(staging),
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            },
        )
        cache.install_folder(staging, folder)
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
    digest = cache.check_hf_blob(path)
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
        check_structure(entry, safetensors_shapes(path), path)
        return path
    if source.kind == "bundled":
        if not source.path.is_file():
            raise WeightsError(f"bundled file {source.path} is missing from the installation")
        cache.check_file(source.path, sha256=source.sha256, size=source.size, what=source.describe())
        return source.path
    if source.kind == "file":  # a file placed by hand: read in place, never removed
        return _install(entry, source.path, source)
    downloads = cache.partial_folder(entry.name)
    if source.kind == "gdrive":
        tmp = hub.download_gdrive(source.file_id, downloads, source.filename, progress=progress)
    else:
        tmp = hub.download_url(source.url, downloads, source.filename, progress=progress)
    try:
        return _install(entry, tmp, source)
    finally:
        tmp.unlink(missing_ok=True)


def _drop_files(entry: ModelEntry) -> list[Path]:
    folder = entry.drop_folder()
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix in PATH_SUFFIXES
    )


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
    name: str,
    *,
    force: bool = False,
    progress: bool = True,
    from_file: str | os.PathLike | None = None,
    trusted: bool = False,
) -> Path:
    """Make model ``name`` available locally and return its verified ``model.safetensors``.

    Tries, in order: the cache (unless ``force``), files placed in the model's drop folder, then the manifest's
    sources. ``from_file`` imports a checkpoint fetched by hand instead; ``trusted`` allows a full
    (code-executing) unpickle of that file only. A failed attempt never touches a good cached copy.
    """
    entry = get_model_entry(name)
    if trusted and from_file is None:
        raise ConfigError("trusted=True applies to a file given with from_file (--from) only")
    if from_file is not None:
        path = Path(from_file).expanduser()
        if not path.is_file():
            raise WeightsError(f"{path}: no such file")
        with cache.install_lock(entry.name):
            return _install(entry, path, _local_source(path), trusted=trusted)
    damaged = None
    if not force:
        try:
            located = _locate(entry)
        except WeightsError as exc:  # damaged, or being replaced by another process: looked at again locked
            located, damaged = None, exc
        if located is not None:
            return located
    sources, failures = _usable_sources(entry)
    if not sources:  # nothing to try: fail without creating anything in the cache
        raise damaged or _not_fetched(entry, failures, None)
    with contextlib.ExitStack() as locked:
        try:
            locked.enter_context(cache.install_lock(entry.name))
        except OutputError:
            if damaged is not None:  # a read-only cache: its damage is the news, not that it cannot be locked
                raise damaged from None
            raise
        if not force and (located := _locate(entry)) is not None:  # installed meanwhile by another process
            return located
        last: Exception | None = None
        for source in sources:
            try:
                return _fetch_source(entry, source, progress)
            except (WeightsError, CheckpointError) as exc:
                failures.append(f"{source.describe()}: {exc}")
                last = exc
        raise _not_fetched(entry, failures, last)


def _usable_sources(entry: ModelEntry) -> tuple[list[Source], list[str]]:
    """Files placed by hand, then the manifest's sources, less those offline mode rules out (said why)."""
    offline, usable, skipped = hub.offline_reason(), [], []
    for source in [_local_source(p) for p in _drop_files(entry)] + list(entry.sources):
        if offline and source.needs_network and source.kind != "hf":
            skipped.append(f"{source.describe()}: skipped, downloads are disabled ({offline})")
        else:
            usable.append(source)
    if not usable and not skipped:
        skipped.append("the manifest lists no download source for it")
    return usable, skipped


def _not_fetched(entry: ModelEntry, failures: list[str], last: Exception | None) -> WeightsError:
    offline = hub.offline_reason()
    state = (
        f"downloads are disabled ({offline}) and it is not in the cache"
        if offline
        else "it could not be fetched"
    )
    error = WeightsError(
        f"model '{entry.name}': {state} ({entry.cache_folder()}).\n  - "
        + "\n  - ".join(failures)
        + f"\n{_how_to_fill(entry)}"
    )
    error.__cause__ = last
    return error


def _hf_cached(entry: ModelEntry) -> tuple[Source, Path] | None:
    for source in entry.sources:
        if source.kind == "hf":
            path = hub.hf_cached_file(source.repo_id, source.filename, source.revision)
            if path is not None:
                return source, path
    return None


def _locate(entry: ModelEntry) -> Path | None:
    """A verified local copy of ``entry``'s weights without any download, or None."""
    if (entry.cache_folder() / cache.RECORD_NAME).exists():
        cache.verify_converted(entry.name)
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
    check_structure(entry, safetensors_shapes(path), path)
    record = cache.read_record(entry.name) if path.parent == entry.cache_folder() else None
    return {
        "model": entry.name,
        "path": str(path),
        "sha256": cache.sha256_file(path),
        "source": record["source"] if record else None,
        "original": record["original"] if record else None,
    }


# ----------------------------------------------------------------------------------------------- status


def cache_status(entry: ModelEntry) -> str:
    """One of: cached, hf-cache, bundled, placed (a file placed by hand, not converted yet), not cached."""
    if (entry.cache_folder() / cache.RECORD_NAME).is_file():
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
