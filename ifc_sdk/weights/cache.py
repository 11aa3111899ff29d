"""The ifc_sdk weights cache: where it is, the record that makes a converted copy trustworthy, the lock that
serialises installs, and the sweeping of what killed runs left behind.

Layout (``cache_root()``: ``$IFC_SDK_CACHE``, else ``$XDG_CACHE_HOME/ifc_sdk``, else ``~/.cache/ifc_sdk``)::

    models/<name>/              model.safetensors, config.json, ifc_sdk_source.json (the record)
    downloads/<name>/           checkpoints placed by hand
    downloads/<name>/.partial/  temporary downloads (``*.part``)
    locks/<name>.lock           held while <name> is installed

The record lists the sha256 and size of every file of the folder that is read (model.safetensors and
config.json); a folder is used only when its record is well-formed and every listed file matches it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from ifc_sdk.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from ifc_sdk.errors import OutputError, WeightsError
from ifc_sdk.hub import PART_SUFFIX
from ifc_sdk.io.atomic import (
    atomic_write_text,
    describe_os_error,
    ensure_dir,
    output_error,
    sweep_temporaries,
)

logger = logging.getLogger(__name__)

ENV_CACHE = "IFC_SDK_CACHE"
RECORD_NAME = "ifc_sdk_source.json"
RECORD_VERSION = 1
CACHED_FILES = (WEIGHTS_NAME, CONFIG_NAME)  # every file of a cache folder that is ever read
CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


def cache_root() -> Path:
    """The ifc_sdk cache folder: ``$IFC_SDK_CACHE``, else ``$XDG_CACHE_HOME/ifc_sdk``, else ``~/.cache/ifc_sdk``."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base).expanduser() if base else Path.home() / ".cache") / "ifc_sdk"


def model_folder(name: str) -> Path:
    """Where model ``name`` is kept converted."""
    return cache_root() / "models" / name


def drop_folder(name: str) -> Path:
    """Where a checkpoint fetched by hand is placed to be picked up (verified and converted) on load."""
    return cache_root() / "downloads" / name


def partial_folder(name: str) -> Path:
    """Where the downloads of model ``name`` are written while they arrive."""
    return drop_folder(name) / ".partial"


# ----------------------------------------------------------------------------------------------- hashing


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of a file; an unreadable file is a `WeightsError` naming it and the cause."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read ({describe_os_error(exc)})") from exc
    return digest.hexdigest()


def check_file(path: Path, *, sha256: str | None = None, size: int | None = None, what: str = "file") -> str:
    """Check ``path`` against a known size and sha256 (either may be None); return the sha256 it has."""
    try:
        actual_size = path.stat().st_size
    except OSError as exc:
        raise WeightsError(f"{path}: {what} cannot be read ({describe_os_error(exc)})") from exc
    if size is not None and actual_size != size:
        kind = "truncated" if actual_size < size else "too long"
        raise WeightsError(f"{what} is {kind}: {actual_size} bytes, expected {size} ({path})")
    digest = sha256_file(path)
    if sha256 is not None and digest != sha256.lower():
        raise WeightsError(
            f"{what} has sha256 {digest}, expected {sha256.lower()} (corrupted or tampered download, {path})"
        )
    return digest


def check_hf_blob(path: Path) -> str:
    """Re-hash a file of the Hub cache whose blob is named by its sha256 (LFS files); return the sha256."""
    blob = Path(os.path.realpath(path))
    digest = sha256_file(blob)
    if _SHA256.fullmatch(blob.name) and digest != blob.name:
        raise WeightsError(
            f"{path}: the Hugging Face cache blob is corrupted (sha256 {digest}, its name says "
            f"{blob.name}); delete it (`hf cache delete`) and download again"
        )
    return digest


# ----------------------------------------------------------------------------------------------- the record


def file_entries(folder: Path) -> dict[str, dict]:
    """The ``files`` part of a record for the files of ``folder`` that are ever read."""
    return {
        name: {"sha256": sha256_file(folder / name), "size": (folder / name).stat().st_size}
        for name in CACHED_FILES
    }


def write_record(folder: Path, record: dict) -> None:
    atomic_write_text(folder / RECORD_NAME, json.dumps(record, indent=2) + "\n")


def _record_problem(record: object, name: str) -> str | None:
    """What is wrong with a parsed record (None when it is well-formed)."""
    if not isinstance(record, dict):
        return f"it is a JSON {type(record).__name__}, not an object"
    if record.get("schema_version") != RECORD_VERSION:
        return f"schema_version {record.get('schema_version')!r} (expected {RECORD_VERSION})"
    if record.get("model") != name:
        return f"it records model {record.get('model')!r}"
    for key in ("source", "original"):
        if not isinstance(record.get(key), dict):
            return f"{key!r} is missing or not an object"
    files = record.get("files")
    if not isinstance(files, dict) or set(files) != set(CACHED_FILES):
        listed = sorted(files) if isinstance(files, dict) else files
        return f"'files' must list exactly {list(CACHED_FILES)}, it lists {listed!r}"
    for file, meta in files.items():
        if not (
            isinstance(meta, dict)
            and isinstance(meta.get("sha256"), str)
            and _SHA256.fullmatch(meta["sha256"])
            and type(meta.get("size")) is int
            and meta["size"] >= 0
        ):
            return f"the entry of {file} needs a sha256 (64 hex digits) and a size, has {meta!r}"
    return None


def read_record(name: str) -> dict | None:
    """The well-formed record of cached model ``name``; None when there is none.

    A record that exists but cannot be read, is not JSON, or does not list every cached file with its sha256
    and size is a `WeightsError`: the folder must not be trusted, and ``--force`` replaces it.
    """
    path = model_folder(name) / RECORD_NAME
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read the cache record ({describe_os_error(exc)})") from exc
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        problem: str | None = f"not valid JSON ({exc})"
    else:
        problem = _record_problem(record, name)
    if problem is not None:
        raise WeightsError(f"{path}: malformed cache record: {problem}. {_repair(name)}")
    return record


def verify_converted(name: str) -> dict:
    """Re-hash every cached file of model ``name`` against its record; return the record."""
    folder, record = model_folder(name), read_record(name)
    if record is None:
        raise WeightsError(f"{folder}: no complete cached copy of '{name}' (missing {RECORD_NAME})")
    for file, meta in record["files"].items():
        try:
            check_file(folder / file, sha256=meta["sha256"], size=meta["size"], what=f"cached {file}")
        except WeightsError as exc:
            raise WeightsError(f"{exc}. The cache of '{name}' is damaged: {_repair(name)}") from None
    return record


def _repair(name: str) -> str:
    return f"run `ifc-sdk weights download {name} --force` (or delete {model_folder(name)})"


def install_folder(staging: Path, final: Path) -> None:
    """Move the complete folder ``staging`` to ``final``; an existing ``final`` is replaced only now."""
    backup = final.with_name(f".{final.name}.old")
    try:
        ensure_dir(final.parent, "cache folder")
        if final.exists():
            shutil.rmtree(backup, ignore_errors=True)
            final.rename(backup)
        staging.rename(final)
    except OutputError:
        raise
    except OSError as exc:
        if backup.exists() and not final.exists():
            backup.rename(final)
        raise output_error(final, exc, "cannot install into the cache") from exc
    shutil.rmtree(backup, ignore_errors=True)


# ----------------------------------------------------------------------------------------------- lock and sweep


@contextlib.contextmanager
def install_lock(name: str) -> Iterator[None]:
    """Hold the lock of model ``name`` (other processes installing it wait), then sweep what killed runs left.

    A cache folder that cannot be written (read-only, a file, disk full) is an `OutputError` naming it.
    """
    from filelock import FileLock, Timeout

    root = cache_root()
    ensure_dir(root, "ifc_sdk cache folder")
    path = ensure_dir(root / "locks", "cache lock folder") / f"{name}.lock"
    lock = FileLock(str(path))
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            logger.info("%s: waiting for another process installing it (%s)", name, path)
            lock.acquire()
    except OSError as exc:
        raise output_error(path, exc, "cannot take the cache lock") from exc
    try:
        sweep_stale(name)
        yield
    finally:
        lock.release()


def sweep_stale(name: str) -> None:
    """Remove what a killed download or conversion of ``name`` left; call only while holding its lock.

    That is: its staging folders (`staging_dir`'s naming) and the backup `install_folder` makes in
    ``models/``, and every ``*.part`` file in its download folder (gdown's partial files included).
    """
    models, partial = model_folder(name).parent, partial_folder(name)
    removed = sweep_temporaries(models, re.escape(name))
    leftovers = [models / f".{name}.old"]
    if partial.is_dir():
        leftovers += [p for p in partial.iterdir() if p.name.endswith(PART_SUFFIX)]
    for path in leftovers:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink(missing_ok=True)
        else:
            continue
        removed.append(path)
    for path in removed:
        logger.info("removed %s, left by an interrupted run", path)
