"""Fetching and installing: every source kind end to end on the reference fixtures, and every error path."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
from pathlib import Path

import pytest
import torch
from weights_helpers import (  # noqa: F401 - fixtures
    REAL,
    REFERENCE,
    assert_matches_fixture,
    fake_gdown,
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
from ifc_sdk.checkpoint import WEIGHTS_NAME, convert_checkpoint
from ifc_sdk.errors import CheckpointError, WeightsError

# ----------------------------------------------------------------------------------------------- end to end


def test_http_source_end_to_end(isolated, server) -> None:
    """manifest -> download -> verify -> convert -> cache -> outputs equal to the fixtures; then cache hits."""
    pth = fixture("r50")
    server.routes["/r50.pth"] = pth.read_bytes()
    write_entry(
        isolated / "manifest", "fixture-r50", "r50", [url_source(server.url("/r50.pth"))], aliases=["fx50"]
    )
    assert weights.cache_status(weights.get_model_entry("fx50")) == "not cached"
    model = ifc_sdk.load_model("fx50", device="cpu")
    assert_matches_fixture(model, "r50", backbone=True)
    assert model.config.categories[0] == "person" and model.config.hidden_dim == 64
    assert not partial_files(isolated)

    folder = isolated / "cache" / "models" / "fixture-r50"
    record = json.loads((folder / weights.RECORD_NAME).read_text())
    assert record["original"]["sha256"] == sha256(pth)  # the hash it saw, recorded
    assert record["original"]["verified_by"].startswith("structure")
    assert record["files"][WEIGHTS_NAME]["sha256"] == sha256(folder / WEIGHTS_NAME)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "ifc_sdk_source.json", WEIGHTS_NAME]
    info = {m.name: m for m in ifc_sdk.list_models()}["fixture-r50"]
    assert info.cached and info.status == "cached" and info.cache_path == folder

    requests = len(server.requests)
    again = ifc_sdk.load_model("fixture-r50", device="cpu")  # from the cache: no request
    assert len(server.requests) == requests
    assert_matches_fixture(again, "r50")
    assert weights.verify("fixture-r50")["sha256"] == record["files"][WEIGHTS_NAME]["sha256"]

    with open(folder / WEIGHTS_NAME, "r+b") as f:  # a cached file is verified against the recorded hash
        f.seek(-8, os.SEEK_END)
        f.write(b"\x00" * 8)
    with pytest.raises(WeightsError, match="damaged.*--force"):
        ifc_sdk.load_model("fixture-r50", device="cpu")
    weights.fetch("fixture-r50", force=True, progress=False)
    assert_matches_fixture(ifc_sdk.load_model("fixture-r50", device="cpu"), "r50")


def test_drive_through_gdown(isolated, monkeypatch) -> None:
    pth = fixture("r101")
    gdown = fake_gdown(monkeypatch, {"DRIVE-R101": pth.read_bytes()})
    write_entry(
        isolated / "manifest",
        "fixture-r101",
        "r101",
        [
            {
                "kind": "gdrive",
                "file_id": "DRIVE-R101",
                "filename": "r101.pth",
                "sha256": sha256(pth),
                "size": pth.stat().st_size,
            }
        ],
    )
    model = ifc_sdk.load_model("fixture-r101", device="cpu")
    assert model.config.input_format == "BGR"
    assert_matches_fixture(model, "r101", backbone=True)
    ((file_id, output),) = gdown.calls
    assert file_id == "DRIVE-R101" and output.parent == isolated / "cache/downloads/fixture-r101/.partial"
    assert not output.exists()  # the temporary download is gone once converted
    record = json.loads((isolated / "cache/models/fixture-r101" / weights.RECORD_NAME).read_text())
    assert record["original"]["verified_by"] == "sha256" and record["source"]["file_id"] == "DRIVE-R101"


@pytest.mark.parametrize("served", [b"<!DOCTYPE html><html><p>Quota exceeded</p></html>", None])
def test_drive_web_page_or_no_file(isolated, monkeypatch, served) -> None:
    fake_gdown(monkeypatch, {} if served is None else {"GONE": served})
    write_entry(isolated / "manifest", "quota", "r50", [{"kind": "gdrive", "file_id": "GONE"}])
    with pytest.raises(WeightsError, match="web page" if served else "gdown could not download.*GONE"):
        weights.fetch("quota", progress=False)
    assert not partial_files(isolated)


def test_real_entry_full_size_through_drive(isolated, monkeypatch) -> None:
    """`load_model("r50")` end to end with a full-size checkpoint laid out as the released one (zeros)."""
    path = REFERENCE / REAL["r50"][1]
    if not path.exists():
        pytest.skip(f"{path} not found")
    keys = json.loads(path.read_text())["keys"]
    pth = isolated / "full.pth"
    torch.save({"model": {k["key"]: torch.zeros(k["shape"]) for k in keys}, "iteration": 1}, pth)
    fake_gdown(monkeypatch, {"1dwkg91omYLmcIA7ze6MZdZj4H5mWT5Fv": pth.read_bytes()})
    model = ifc_sdk.load_model("r50", device="cpu")
    assert model.config.hidden_dim == 256 and model.config.num_queries == 100
    assert model.config.categories == list(weights.get_model_entry("r50").categories)
    assert {m.name: m.status for m in ifc_sdk.list_models()}["ifc-r50-ytvis19"] == "cached"
    record = json.loads((isolated / "cache/models/ifc-r50-ytvis19" / weights.RECORD_NAME).read_text())
    assert record["original"]["sha256"] == sha256(pth) and record["original"]["published_sha256"] is None


def test_file_url_works_offline(isolated) -> None:
    pth = fixture("r50")
    write_entry(isolated / "manifest", "fixture-file", "r50", [url_source(pth.as_uri())])
    assert hub.is_offline()
    assert_matches_fixture(ifc_sdk.load_model("fixture-file", device="cpu"), "r50")


def prefill_hf_cache(hf_cache: Path, repo_id: str, revision: str, files: dict[str, Path]) -> None:
    """The Hub cache layout: blobs named by sha256, snapshots/<commit>/<file> -> blob, refs/main."""
    repo = hf_cache / f"models--{repo_id.replace('/', '--')}"
    for name, src in files.items():
        blob = repo / "blobs" / sha256(src)
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, blob)
        link = repo / "snapshots" / revision / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(revision)


REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hf_repo(isolated) -> Path:
    folder = convert_checkpoint(fixture("r50"), isolated / "converted", preset="r50")
    prefill_hf_cache(
        isolated / "hf",
        "ifc-test/fixture-r50",
        REVISION,
        {n: folder / n for n in ("model.safetensors", "config.json")},
    )
    return folder


def test_hf_source_from_prefilled_cache_offline(isolated, hf_repo) -> None:
    write_entry(
        isolated / "manifest",
        "fixture-hf",
        "r50",
        [
            {
                "kind": "hf",
                "repo_id": "ifc-test/fixture-r50",
                "revision": REVISION,
                "sha256": sha256(hf_repo / WEIGHTS_NAME),
            },
            {"kind": "gdrive", "file_id": "NEVER-USED"},
        ],
    )
    assert weights.cache_status(weights.get_model_entry("fixture-hf")) == "hf-cache"
    assert_matches_fixture(ifc_sdk.load_model("fixture-hf", device="cpu"), "r50")
    assert not (isolated / "cache" / "models").exists()  # Hub files stay in the Hub cache
    assert weights.verify("fixture-hf")["path"].startswith(str(isolated / "hf"))


def test_hf_uri_from_prefilled_cache_offline(isolated, hf_repo) -> None:
    for uri in ("hf://ifc-test/fixture-r50", f"hf://ifc-test/fixture-r50@{REVISION}"):
        model = ifc_sdk.load_model(uri, device="cpu")
        assert_matches_fixture(model, "r50")
    with pytest.raises(WeightsError, match=r"not in the Hugging Face cache .*disabled.*_OFFLINE=1"):
        ifc_sdk.load_model("hf://ifc-test/missing", device="cpu")


def test_hf_corrupted_blob_and_wrong_hash(isolated, hf_repo) -> None:
    write_entry(
        isolated / "manifest",
        "fixture-hf-bad",
        "r50",
        [{"kind": "hf", "repo_id": "ifc-test/fixture-r50", "revision": REVISION, "sha256": "0" * 64}],
    )
    with pytest.raises(WeightsError, match="expected 0000"):
        ifc_sdk.load_model("fixture-hf-bad", device="cpu")
    blob = next((isolated / "hf").rglob("blobs/*"))
    blob = max((isolated / "hf").rglob("blobs/*"), key=lambda p: p.stat().st_size)
    with open(blob, "r+b") as f:
        f.write(b"\x01\x02")
    with pytest.raises(WeightsError, match="cache blob is corrupted"):
        ifc_sdk.load_model("hf://ifc-test/fixture-r50", device="cpu")


def test_bundled_source_relative_to_manifest(isolated) -> None:
    folder = isolated / "manifest"
    convert_checkpoint(fixture("r50"), folder / "bundle", preset="r50")
    write_entry(
        folder,
        "fixture-bundled",
        "r50",
        [
            {
                "kind": "bundled",
                "path": "bundle/model.safetensors",
                "sha256": sha256(folder / "bundle" / WEIGHTS_NAME),
            }
        ],
    )
    entry = weights.get_model_entry("fixture-bundled")
    assert entry.sources[0].path == (folder / "bundle" / WEIGHTS_NAME).resolve()
    assert weights.cache_status(entry) == "bundled"
    assert_matches_fixture(ifc_sdk.load_model("fixture-bundled", device="cpu"), "r50")
    assert not (isolated / "cache" / "models").exists()  # loaded in place


def test_missing_file_url_names_the_file(isolated, tmp_path) -> None:
    gone = tmp_path / "nowhere" / "model_final.pth"
    write_entry(isolated / "manifest", "gone", "r50", [url_source(gone.as_uri())])
    with pytest.raises(WeightsError) as info:
        weights.fetch("gone", progress=False)
    assert f"{gone}: no such file" in str(info.value) and "cannot connect" not in str(info.value)
    assert not partial_files(isolated)


# ----------------------------------------------------------------------------------------------- errors


def test_offline_with_empty_cache_says_how_to_fill_it(isolated) -> None:
    with pytest.raises(WeightsError) as info:
        ifc_sdk.load_model("r50", device="cpu")
    message = str(info.value)
    cache = isolated / "cache"
    assert "ifc-r50-ytvis19" in message and "downloads are disabled (IFC_SDK_OFFLINE=1)" in message
    assert str(cache / "models" / "ifc-r50-ytvis19") in message
    assert str(cache / "downloads" / "ifc-r50-ytvis19") in message
    assert "https://drive.google.com/uc?id=1dwkg91omYLmcIA7ze6MZdZj4H5mWT5Fv" in message
    assert "--from FILE" in message
    assert not cache.exists()


def test_no_download_source_then_placed_by_hand(isolated) -> None:
    write_entry(isolated / "manifest", "manual-only", "r50", [])
    with pytest.raises(WeightsError, match="(?s)no download source.*not available for download"):
        weights.fetch("manual-only", progress=False)
    entry = weights.get_model_entry("manual-only")
    entry.drop_folder().mkdir(parents=True)
    shutil.copyfile(fixture("r50"), entry.drop_folder() / "model_final.pth")
    assert weights.cache_status(entry) == "placed"
    assert_matches_fixture(ifc_sdk.load_model("manual-only", device="cpu"), "r50")
    assert weights.cache_status(entry) == "cached"
    assert (entry.drop_folder() / "model_final.pth").exists()  # a file placed by hand is left alone


def test_hash_mismatch_removes_the_download(isolated, server) -> None:
    server.routes["/r50.pth"] = fixture("r50").read_bytes()
    write_entry(
        isolated / "manifest", "bad-hash", "r50", [url_source(server.url("/r50.pth"), sha256="ab" * 32)]
    )
    with pytest.raises(WeightsError, match=f"expected {'ab' * 32}") as info:
        ifc_sdk.load_model("bad-hash", device="cpu")
    assert sha256(fixture("r50")) in str(info.value)
    assert not partial_files(isolated) and not (isolated / "cache" / "models").exists()


@pytest.mark.parametrize("how", ["connection", "size"])
def test_truncated_download(isolated, server, how) -> None:
    data = fixture("r50").read_bytes()
    if how == "connection":  # the server announces the full length and stops half way
        server.routes["/r50.pth"] = lambda h: send(h, data[: len(data) // 2], length=len(data))
        source = url_source(server.url("/r50.pth"))
    else:  # the server is consistent, the file is shorter than the manifest says
        server.routes["/r50.pth"] = data[:-1000]
        source = url_source(server.url("/r50.pth"), size=len(data))
    write_entry(isolated / "manifest", "truncated", "r50", [source])
    with pytest.raises(WeightsError, match="truncated"):
        weights.fetch("truncated", progress=False)
    assert not partial_files(isolated) and not (isolated / "cache" / "models").exists()


def test_failed_redownload_never_overwrites_a_good_cache(isolated, server) -> None:
    data = fixture("r50").read_bytes()
    server.routes["/r50.pth"] = data
    write_entry(isolated / "manifest", "keep-good", "r50", [url_source(server.url("/r50.pth"))])
    good = weights.fetch("keep-good", progress=False)
    before = {p.name: sha256(p) for p in good.parent.iterdir()}
    for bad in (data[: len(data) // 3], b"\x00" * len(data), b"<!DOCTYPE html><html>quota</html>"):
        server.routes["/r50.pth"] = bad
        with pytest.raises(WeightsError):
            weights.fetch("keep-good", force=True, progress=False)
        assert {p.name: sha256(p) for p in good.parent.iterdir()} == before
        assert not partial_files(isolated)
    assert_matches_fixture(ifc_sdk.load_model("keep-good", device="cpu"), "r50")


class Unknown:
    """A class the safe unpickler does not know."""


class Code:
    """Runs a function when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.mark.parametrize("payload", ["global", "code"])
def test_pickle_with_globals_or_code_is_refused(isolated, server, payload) -> None:
    marker = isolated / "executed"
    state = {k: v for k, v in torch.load(fixture("r50"), weights_only=True)["model"].items()}
    evil = isolated / "evil.pth"
    torch.save({"model": state, "extra": Unknown() if payload == "global" else Code(marker)}, evil)
    server.routes["/evil.pth"] = evil.read_bytes()
    write_entry(isolated / "manifest", "evil", "r50", [url_source(server.url("/evil.pth"))])
    with pytest.raises(WeightsError, match="refused to unpickle") as info:
        ifc_sdk.load_model("evil", device="cpu")
    assert isinstance(info.value.__cause__, CheckpointError)
    assert not marker.exists()
    assert not partial_files(isolated) and not (isolated / "cache" / "models").exists()


def test_wrong_architecture_is_refused(isolated, server, monkeypatch) -> None:
    data = fixture("r50").read_bytes()
    server.routes["/r50.pth"] = data
    write_entry(isolated / "manifest", "expects-r101", "r101", [url_source(server.url("/r50.pth"))])
    with pytest.raises(WeightsError, match="wrong architecture for model 'expects-r101'.*ResNet-50") as info:
        ifc_sdk.load_model("expects-r101", device="cpu")
    assert isinstance(info.value.__cause__, CheckpointError)
    # the real R101 entry served a reduced R50 checkpoint: refused the same way, both Drive ids tried
    fake_gdown(monkeypatch, {s.file_id: data for s in weights.get_model_entry("r101").sources})
    with pytest.raises(WeightsError, match="wrong architecture for model 'ifc-r101-ytvis19'") as info:
        ifc_sdk.load_model("r101", device="cpu")
    assert str(info.value).count("wrong architecture") == 2
    assert not partial_files(isolated) and not (isolated / "cache" / "models").exists()


def test_second_source_used_when_first_fails(isolated, server) -> None:
    server.routes["/r50.pth"] = fixture("r50").read_bytes()
    write_entry(
        isolated / "manifest",
        "fallback",
        "r50",
        [url_source(server.url("/missing.pth")), url_source(server.url("/r50.pth"))],
    )
    assert_matches_fixture(ifc_sdk.load_model("fallback", device="cpu"), "r50")
    assert [r for r in server.requests] == ["/missing.pth", "/r50.pth"]
