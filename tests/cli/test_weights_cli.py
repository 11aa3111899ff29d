"""``ifc-sdk weights list|download|verify|convert`` and ``ifc-sdk convert``, offline, on the reference fixtures."""

from __future__ import annotations

import datetime
import json
import socket
from pathlib import Path

import pytest
import torch
from faults import disk_full_for

from ifc_sdk.checkpoint import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    convert_reference_state_dict,
    load_checkpoint,
    read_pth,
)
from ifc_sdk.cli import main

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "reference"
SMALL = {"hidden_dim": 64, "dim_feedforward": 128, "num_queries": 12, "bottleneck_channels": 8}
REAL_NAMES = ("ifc-r101-ytvis19", "ifc-r50-coco", "ifc-r50-ytvis19", "shapes-demo")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Cache and manifest in tmp, downloads disabled, no socket at all."""
    import huggingface_hub.constants

    monkeypatch.setenv("IFC_SDK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    (tmp_path / "manifest").mkdir()
    monkeypatch.setenv("IFC_SDK_MANIFEST", str(tmp_path / "manifest"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("IFC_SDK_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    def no_network(sock, address):
        raise AssertionError(f"test tried to open a connection: {address}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    return tmp_path


@pytest.fixture
def pth() -> Path:
    path = REFERENCE / "r50_seed0.pth"
    if not path.exists():
        pytest.skip(f"reference fixture {path} not found (expected ../shared beside the repository)")
    return path


def add_entry(tmp_path: Path, name: str, sources: list[dict], categories: list[str] | None = None) -> None:
    entry = {
        "name": name,
        "preset": "r50",
        "config": SMALL,
        "num_classes": 40,
        "categories": categories,
        "input": {"input_format": "RGB"},
        "sources": sources,
    }
    (tmp_path / "manifest" / f"{name}.json").write_text(json.dumps(entry))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def same_weights(folder: Path, pth: Path) -> bool:
    reference = convert_reference_state_dict(read_pth(pth))
    state = load_checkpoint(folder).state_dict()
    return state.keys() == reference.keys() and all(torch.equal(v, reference[k]) for k, v in state.items())


def test_list(capsys, isolated, pth) -> None:
    code, out, _ = run(capsys, "weights", "list")
    assert code == 0
    assert f"cache: {isolated / 'cache'}" in out and "downloads disabled (HF_HUB_OFFLINE=1)" in out
    for name in REAL_NAMES:
        assert name in out
    assert "r50, r50-ytvis19, ifc-r50" in out and "not cached" in out
    add_entry(isolated, "fixture", [{"kind": "url", "url": pth.as_uri(), "filename": "r50.pth"}])
    assert run(capsys, "weights", "download", "fixture", "--quiet")[0] == 0
    code, out, _ = run(capsys, "weights", "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) == {*REAL_NAMES, "fixture"}
    assert rows["fixture"]["status"] == "cached" and rows["fixture"]["cached"] is True
    assert rows["ifc-r50-ytvis19"] | {"description": ""} == {
        "name": "ifc-r50-ytvis19",
        "aliases": ["r50", "r50-ytvis19", "ifc-r50"],
        "preset": "r50",
        "num_classes": 40,
        "sources": ["gdrive", "gdrive"],
        "status": "not cached",
        "cached": False,
        "cache_path": str(isolated / "cache" / "models" / "ifc-r50-ytvis19"),
        "description": "",
    }


def test_download_and_verify(capsys, isolated, pth) -> None:
    add_entry(isolated, "fixture", [{"kind": "url", "url": pth.as_uri(), "filename": "r50.pth"}])
    code, out, _ = run(capsys, "weights", "download", "fixture", "--quiet")
    weights_file = isolated / "cache" / "models" / "fixture" / WEIGHTS_NAME
    assert code == 0 and out.strip() == str(weights_file)
    assert same_weights(weights_file.parent, pth)
    code, out, _ = run(capsys, "weights", "verify", "fixture")
    assert code == 0 and out.startswith(f"ok: fixture: {weights_file}")
    assert "verified by structure (no published sha256)" in out
    with open(weights_file, "r+b") as f:
        f.seek(100)
        f.write(b"\xff\xff\xff\xff")
    code, _, err = run(capsys, "weights", "verify", "fixture")
    assert code == 1 and "damaged" in err and "ifc-sdk weights download fixture --force" in err
    assert run(capsys, "weights", "download", "fixture", "--force", "--quiet")[0] == 0
    assert run(capsys, "weights", "verify", "fixture")[0] == 0


def test_download_errors(capsys, isolated, pth) -> None:
    code, _, err = run(capsys, "weights", "download", "r50", "--quiet")
    assert code == 1 and "downloads are disabled (HF_HUB_OFFLINE=1)" in err
    assert str(isolated / "cache" / "downloads" / "ifc-r50-ytvis19") in err
    code, _, err = run(capsys, "weights", "download", "no-such-model")
    assert code == 1 and "unknown model 'no-such-model'" in err and "ifc-r50-ytvis19" in err
    # the reduced fixture is not the released R50: refused, nothing cached
    code, _, err = run(capsys, "weights", "download", "r50", "--from", str(pth))
    assert code == 1 and "wrong architecture for model 'ifc-r50-ytvis19'" in err
    assert not (isolated / "cache" / "models").exists()
    code, _, err = run(capsys, "weights", "verify", "r50")
    assert code == 1 and "not cached" in err


def test_download_from_a_file_fetched_by_hand(capsys, isolated, pth) -> None:
    add_entry(isolated, "manual", [])
    code, out, _ = run(capsys, "weights", "download", "manual", "--from", str(pth))
    assert code == 0 and same_weights(Path(out.strip()).parent, pth)
    record = json.loads((Path(out.strip()).parent / "ifc_sdk_source.json").read_text())
    assert record["source"]["kind"] == "file" and record["original"]["filename"] == pth.name


@pytest.mark.parametrize("argv", [("convert",), ("weights", "convert")])
def test_convert(capsys, isolated, pth, argv) -> None:
    out_dir = isolated / "converted"
    code, out, _ = run(capsys, *argv, str(pth), str(out_dir), "--preset", "r50")
    assert code == 0 and out.splitlines()[0] == str(out_dir)
    assert sorted(p.name for p in out_dir.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    assert "sha256" in out and f"hf upload OWNER/REPO {out_dir} ." in out
    assert same_weights(out_dir, pth)


def test_convert_with_manifest_name(capsys, isolated, pth) -> None:
    categories = [f"class{i}" for i in range(40)]
    add_entry(isolated, "fixture", [], categories=categories)
    code, _, _ = run(capsys, "convert", str(pth), str(isolated / "out"), "--name", "fixture")
    assert code == 0
    assert json.loads((isolated / "out" / CONFIG_NAME).read_text())["categories"] == categories
    code, _, err = run(capsys, "weights", "convert", str(pth), str(isolated / "out101"), "--name", "r101")
    assert code == 1 and "wrong architecture for model 'ifc-r101-ytvis19'" in err
    assert not (isolated / "out101").exists()


def test_convert_refuses_unsafe_pickles_unless_trusted(capsys, isolated, pth) -> None:
    state = torch.load(pth, weights_only=True)
    unsafe = isolated / "unsafe.pth"
    torch.save({**state, "saved_at": datetime.datetime(2021, 12, 17)}, unsafe)
    code, _, err = run(capsys, "convert", str(unsafe), str(isolated / "out"))
    assert code == 1 and "refused to unpickle" in err and "--trusted" in err
    assert not (isolated / "out").exists()
    code, _, _ = run(capsys, "convert", str(unsafe), str(isolated / "out"), "--trusted")
    assert code == 0 and same_weights(isolated / "out", pth)


@pytest.mark.parametrize(
    ("argv", "options"),
    [(("convert",), ()), (("weights", "convert"), ()), (("convert",), ("--name", "fixture"))],
)
def test_convert_into_a_folder_keeps_the_users_files(capsys, isolated, pth, argv, options) -> None:
    add_entry(isolated, "fixture", [])
    out_dir = isolated / "project"
    (out_dir / "data").mkdir(parents=True)
    (out_dir / "data" / "clip.mp4").write_bytes(b"video")
    (out_dir / "README.md").write_text("mine")
    code, _, err = run(capsys, *argv, str(pth), str(out_dir), *options)
    assert code == 0, err
    assert sorted(p.name for p in out_dir.iterdir()) == ["README.md", CONFIG_NAME, "data", WEIGHTS_NAME]
    code, _, err = run(capsys, *argv, str(pth), str(out_dir), *options)
    assert code == 1 and "already holds a model" in err and "--overwrite" in err and "Traceback" not in err
    assert run(capsys, *argv, str(pth), str(out_dir), *options, "--overwrite")[0] == 0
    assert (out_dir / "data" / "clip.mp4").read_bytes() == b"video" and (
        out_dir / "README.md"
    ).read_text() == "mine"
    assert same_weights(out_dir, pth)


def test_convert_to_an_existing_file(capsys, isolated, pth) -> None:
    target = isolated / "out"
    target.write_text("user data")
    code, _, err = run(capsys, "convert", str(pth), str(target))
    assert code == 1 and f"{target}: the output folder is an existing file" in err
    assert target.read_text() == "user data"


def test_download_from_an_unsafe_pickle_offers_a_flag_that_exists(capsys, isolated, pth) -> None:
    add_entry(isolated, "manual", [])
    state = torch.load(pth, weights_only=True)
    unsafe = isolated / "unsafe.pth"
    torch.save({**state, "saved_at": datetime.datetime(2021, 12, 17)}, unsafe)
    code, _, err = run(capsys, "weights", "download", "manual", "--from", str(unsafe))
    assert code == 1 and "refused to unpickle" in err and "--trusted" in err
    code, out, err = run(
        capsys, "weights", "download", "manual", "--from", str(unsafe), "--trusted", "--quiet"
    )
    assert code == 0, err
    assert same_weights(Path(out.strip()).parent, pth)
    code, _, err = run(capsys, "weights", "download", "manual", "--trusted")
    assert code == 1 and "--from" in err


def test_cache_that_is_a_file_exits_1_naming_it(capsys, isolated, pth, monkeypatch) -> None:
    cache = isolated / "cachefile"
    cache.write_text("user data")
    monkeypatch.setenv("IFC_SDK_CACHE", str(cache))
    add_entry(isolated, "fixture", [{"kind": "url", "url": pth.as_uri(), "filename": "r50.pth"}])
    code, _, err = run(capsys, "weights", "download", "fixture", "--quiet")
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"ifc-sdk weights: error: {cache}: ") and "existing file" in err


def test_disk_full_during_convert_exits_1(capsys, isolated, pth, monkeypatch) -> None:
    disk_full_for(monkeypatch, WEIGHTS_NAME)
    code, _, err = run(capsys, "convert", str(pth), str(isolated / "out"))
    assert code == 1 and err.count("\n") == 1 and "no space left on the device (disk full)" in err
    assert str(isolated / "out" / WEIGHTS_NAME) in err and list((isolated / "out").iterdir()) == []
