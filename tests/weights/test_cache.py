"""The cache: location, integrity records, permissions, the install lock between processes, sweeping what killed
runs left, and filesystem failures (read-only, a file, disk full) as typed errors naming the path."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from faults import disk_full_for, full_disk_open
from weights_helpers import (  # noqa: F401 - fixtures
    fixture,
    isolated_fixture,
    one_thread_fixture,
    partial_files,
    send,
    server_fixture,
    sha256,
    url_source,
    write_entry,
)

import ifc_sdk
from ifc_sdk import hub, weights
from ifc_sdk.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from ifc_sdk.errors import OutputError, WeightsError

NAME = "fixture-r50"


def add_r50_entry(root: Path, url: str | None = None) -> None:
    write_entry(root / "manifest", NAME, "r50", [url_source(url or fixture("r50").as_uri())])


def install_r50(root: Path) -> Path:
    """The reduced R50 fixture installed from a file:// source (works offline); its cached weights."""
    add_r50_entry(root)
    return weights.fetch(NAME, progress=False)


def flip_last_bytes(path: Path) -> None:
    with open(path, "r+b") as f:
        f.seek(-8, os.SEEK_END)
        tail = f.read(8)
        f.seek(-8, os.SEEK_END)
        f.write(bytes(b ^ 0xFF for b in tail))


def test_cache_location(monkeypatch, tmp_path) -> None:
    assert weights.cache_root() == tmp_path / "cache"
    monkeypatch.delenv("IFC_SDK_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert weights.cache_root() == tmp_path / "xdg" / "ifc_sdk"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert weights.cache_root() == Path.home() / ".cache" / "ifc_sdk"


# ----------------------------------------------------------------------------------------------- integrity


def _only(name: str):
    def tamper(record: dict) -> dict:
        record["files"] = {name: record["files"][name]}
        return record

    return tamper


TAMPERED = {
    "files-empty": (lambda r: {**r, "files": {}}, "'files' must list exactly"),
    "files-missing": (lambda r: {k: v for k, v in r.items() if k != "files"}, "'files' must list exactly"),
    "files-wrong-keys": (
        lambda r: {**r, "files": {"weights.bin": r["files"][WEIGHTS_NAME]}},
        "it lists ['weights.bin']",
    ),
    "config-only": (_only(CONFIG_NAME), "it lists ['config.json']"),
    "no-size": (
        lambda r: {
            **r,
            "files": {**r["files"], WEIGHTS_NAME: {"sha256": r["files"][WEIGHTS_NAME]["sha256"]}},
        },
        "needs a sha256 (64 hex digits) and a size",
    ),
    "list": (lambda r: [r], "it is a JSON list, not an object"),
    "other-model": (lambda r: {**r, "model": "r50"}, "it records model 'r50'"),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_malformed_record_never_lets_a_flipped_file_load(isolated, case) -> None:
    weights_file = install_r50(isolated)
    record_file = weights_file.parent / weights.RECORD_NAME
    tamper, says = TAMPERED[case]
    record_file.write_text(json.dumps(tamper(json.loads(record_file.read_text()))))
    flip_last_bytes(weights_file)
    for attempt in (lambda: ifc_sdk.load_model(NAME, device="cpu"), lambda: weights.verify(NAME)):
        with pytest.raises(WeightsError, match="malformed cache record") as info:
            attempt()
        message = str(info.value)
        assert str(record_file) in message and says in message and f"download {NAME} --force" in message
    weights.fetch(NAME, force=True, progress=False)  # --force replaces the folder it cannot trust
    assert weights.verify(NAME)["sha256"] == sha256(weights_file) != sha256(fixture("r50"))


def test_record_that_is_not_json(isolated) -> None:
    weights_file = install_r50(isolated)
    (weights_file.parent / weights.RECORD_NAME).write_text('{"schema_version": 1, "files": ')
    with pytest.raises(WeightsError, match="malformed cache record: not valid JSON"):
        weights.fetch(NAME, progress=False)


@pytest.mark.parametrize("file", [WEIGHTS_NAME, CONFIG_NAME])
def test_every_cached_file_is_checked(isolated, file) -> None:
    folder = install_r50(isolated).parent
    flip_last_bytes(folder / file)
    with pytest.raises(WeightsError, match=f"cached {file} has sha256 .*damaged.*--force"):
        ifc_sdk.load_model(NAME, device="cpu")


# ----------------------------------------------------------------------------------------------- permissions


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_cache_files_follow_the_umask(isolated, umask022) -> None:
    install_r50(isolated)
    modes = {
        str(p.relative_to(isolated / "cache")): stat.S_IMODE(p.stat().st_mode)
        for p in [isolated / "cache", *(isolated / "cache").rglob("*")]
    }
    assert modes["models/fixture-r50"] == 0o755 and modes[f"models/fixture-r50/{WEIGHTS_NAME}"] == 0o644
    assert all(mode == (0o755 if (isolated / "cache" / p).is_dir() else 0o644) for p, mode in modes.items())


# ----------------------------------------------------------------------------------------------- concurrency


def install_in_process(env: dict[str, str], barrier, log: str) -> None:
    """A second process: count the installs it does, wait for its peer, fetch the model."""
    os.environ.update(env)
    from ifc_sdk.weights import install

    convert = install._install

    def logged(*args, **kwargs):
        with open(log, "a") as f:
            f.write(f"install {os.getpid()}\n")
        return convert(*args, **kwargs)

    install._install = logged
    barrier.wait(timeout=120)
    path = install.fetch(NAME, progress=False)
    with open(log, "a") as f:
        f.write(f"done {path}\n")


def test_two_processes_installing_at_once_serialise(isolated) -> None:
    add_r50_entry(isolated)
    env = {
        k: os.environ[k] for k in ("IFC_SDK_CACHE", "IFC_SDK_MANIFEST", "IFC_SDK_OFFLINE", "HF_HUB_OFFLINE")
    }
    # fork: the children start in milliseconds instead of importing torch again (seconds on a shared CPU)
    ctx = multiprocessing.get_context(
        "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    )
    log = isolated / "log.txt"
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=install_in_process, args=(env, barrier, str(log))) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]
    lines = log.read_text().splitlines()
    cached = isolated / "cache" / "models" / NAME / WEIGHTS_NAME
    assert sorted(lines) == sorted([f"done {cached}", f"done {cached}", lines[0]])
    assert lines[0].startswith("install ")  # one converted it; the other waited and found its copy
    assert weights.verify(NAME)["path"] == str(cached) and not partial_files(isolated)


# ----------------------------------------------------------------------------------------------- killed runs


def test_next_install_sweeps_what_killed_runs_left(isolated) -> None:
    models, partial = isolated / "cache" / "models", isolated / "cache" / "downloads" / NAME / ".partial"
    stale = [
        models / f".{NAME}.staging-k1ll3dab" / WEIGHTS_NAME,
        models / f".{NAME}.old" / CONFIG_NAME,
        partial / ".model.pth.x7y2.part",
        partial / "model.pthabcdefgh.part",  # gdown's own partial file
    ]
    kept = [models / ".other-model.staging-k1ll3dab" / WEIGHTS_NAME, partial.parent / "notes.txt"]
    for path in stale + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"left behind")
    install_r50(isolated)
    assert [p for p in stale if p.exists()] == [] and not (models / f".{NAME}.staging-k1ll3dab").exists()
    assert all(p.read_bytes() == b"left behind" for p in kept)


def test_download_killed_with_sigkill_is_swept_by_the_next_run(isolated, server) -> None:
    data, started, release = fixture("r50").read_bytes(), threading.Event(), threading.Event()

    def stall(handler) -> None:  # half the file, then nothing until the test is over
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data[: len(data) // 2])
        handler.wfile.flush()
        started.set()
        release.wait(60)

    server.routes["/stall.pth"] = stall
    add_r50_entry(isolated, server.url("/stall.pth"))
    code = f"from ifc_sdk.weights import fetch; fetch({NAME!r}, progress=False)"
    child = subprocess.Popen([sys.executable, "-c", code], env=os.environ.copy())
    try:
        parts = []
        for _ in range(600):
            parts = [p for p in partial_files(isolated) if p.suffix == ".part" and p.stat().st_size > 0]
            if started.is_set() and parts:
                break
            time.sleep(0.1)
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        release.set()
    assert child.returncode == -signal.SIGKILL and len(parts) == 1 and parts[0].exists()
    server.routes["/stall.pth"] = data
    weights.fetch(NAME, progress=False)
    assert not parts[0].exists() and not partial_files(isolated)


# ----------------------------------------------------------------------------------------------- filesystem


def test_cache_that_is_a_file(isolated, monkeypatch) -> None:
    not_a_folder = isolated / "cachefile"
    not_a_folder.write_text("user data")
    monkeypatch.setenv("IFC_SDK_CACHE", str(not_a_folder))
    add_r50_entry(isolated)
    with pytest.raises(OutputError, match="is an existing file, not a folder") as info:
        weights.fetch(NAME, progress=False)
    assert info.value.path == str(not_a_folder) and not_a_folder.read_text() == "user data"


def test_read_only_cache(isolated, monkeypatch) -> None:
    """Simulated (the tests may run as root, who writes anywhere): every folder creation under the cache fails."""
    real_mkdir, cache = os.mkdir, isolated / "cache"

    def mkdir(path, *args, **kwargs):
        if Path(path).is_relative_to(cache):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    add_r50_entry(isolated)
    with pytest.raises(OutputError, match="read-only file system") as info:
        weights.fetch(NAME, progress=False)
    assert info.value.path == str(cache)


def test_disk_full_during_download(isolated, monkeypatch) -> None:
    full_disk_open(monkeypatch, hub, capacity=1000)
    add_r50_entry(isolated)
    with pytest.raises(OutputError, match="cannot write the download of .*disk full") as info:
        weights.fetch(NAME, progress=False)
    assert info.value.path.startswith(str(isolated / "cache" / "downloads" / NAME / ".partial"))
    assert not partial_files(isolated) and not (isolated / "cache" / "models").exists()


def test_disk_full_during_conversion(isolated, monkeypatch) -> None:
    disk_full_for(monkeypatch, WEIGHTS_NAME)
    with pytest.raises(OutputError, match=f"{WEIGHTS_NAME}: cannot write: no space left") as info:
        install_r50(isolated)
    assert info.value.path.startswith(str(isolated / "cache" / "models" / f".{NAME}.staging-"))
    assert not partial_files(isolated) and not (isolated / "cache" / "models" / NAME).exists()
