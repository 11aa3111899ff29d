"""Pretrained weights: the manifest, sources served locally, verification, the cache and every error path.

Nothing here reaches the network: sources are file:// URLs, an HTTP server on 127.0.0.1 started by the test
(also emulating Google Drive's confirmation page), a fake ``gdown`` and a pre-filled Hugging Face cache with
``HF_HUB_OFFLINE=1``; a socket guard refuses any other address.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import importlib
import json
import os
import pathlib
import shutil
import socket
import sys
import threading
import types
import urllib.parse
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import ifc_sdk
from ifc_sdk import hub, weights
from ifc_sdk.checkpoint import (
    WEIGHTS_NAME,
    convert_checkpoint,
    convert_reference_state_dict,
    read_pth,
    reference_key_to_sdk,
)
from ifc_sdk.errors import CheckpointError, WeightsError
from ifc_sdk.modeling import PRESETS

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "reference"
FIXTURES = {"r50": "r50_seed0", "r101": "r101_seed1"}
# The reduced widths of the reference fixture checkpoints (see the fixtures' README).
SMALL = {"hidden_dim": 64, "dim_feedforward": 128, "num_queries": 12, "bottleneck_channels": 8}
REAL = {
    "r50": ("ifc-r50-ytvis19", "schema_full_r50_base_ytvis.json"),
    "r101": ("ifc-r101-ytvis19", "schema_full_r101_ytvis.json"),
}
MANIFEST_DIR = Path(importlib.import_module(weights.MANIFEST_PACKAGE).__file__).parent
YTVIS19_FIRST_LAST = ("person", "giant_panda", "earless_seal", "tennis_racket")


def fixture(name: str, kind: str = "pth") -> Path:
    path = REFERENCE / (f"{FIXTURES[name]}.pth" if kind == "pth" else f"{FIXTURES[name]}_{kind}.safetensors")
    if not path.exists():
        pytest.skip(f"reference fixture {path} not found (expected ../shared beside the repository)")
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ----------------------------------------------------------------------------------------------- isolation


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small tensors: one intra-op thread is faster than several on a shared CPU (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Cache, Hub cache and extra manifest in tmp; offline by default; sockets only to 127.0.0.1."""
    monkeypatch.setenv("IFC_SDK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    (tmp_path / "manifest").mkdir()
    monkeypatch.setenv("IFC_SDK_MANIFEST", str(tmp_path / "manifest"))
    monkeypatch.delenv("IFC_SDK_GDRIVE_URL", raising=False)
    set_offline(monkeypatch, True)
    real_connect = socket.socket.connect

    def guarded(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if sock.family == socket.AF_UNIX or host in ("127.0.0.1", "localhost", "::1"):
            return real_connect(sock, address)
        raise AssertionError(f"test tried to reach the network: {address}")

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return tmp_path


def set_offline(monkeypatch, offline: bool) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1" if offline else "0")
    monkeypatch.setenv("IFC_SDK_OFFLINE", "1" if offline else "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", offline)


class Server:
    """An HTTP server on 127.0.0.1: ``routes`` maps a path to bytes or to ``handler(request) -> None``."""

    def __init__(self) -> None:
        self.routes: dict[str, object] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.requests.append(self.path)
                route = server.routes.get(urllib.parse.urlsplit(self.path).path)
                if route is None:
                    self.send_error(404)
                elif callable(route):
                    route(self)
                else:
                    send(self, route)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


def send(
    handler, body: bytes, content_type: str = "application/octet-stream", length: int | None = None
) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body) if length is None else length))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def server(monkeypatch):
    set_offline(monkeypatch, False)
    srv = Server()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def drive_route(files: dict[str, bytes]):
    """Emulates drive.usercontent.google.com/download: a virus-scan warning form first, then the file."""

    def route(handler):
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(handler.path).query))
        body = files.get(query.get("id"))
        if body is None:
            return send(handler, b"<!DOCTYPE html><html><p>Not found</p></html>", "text/html; charset=utf-8")
        if query.get("uuid") != "0f1e":
            page = (
                "<!DOCTYPE html><html><body><p>Google Drive can't scan this file for viruses.</p>"
                '<form id="download-form" action="/download" method="get">'
                f'<input type="hidden" name="id" value="{query["id"]}">'
                '<input type="hidden" name="export" value="download">'
                '<input type="hidden" name="confirm" value="t">'
                '<input type="hidden" name="uuid" value="0f1e"></form></body></html>'
            )
            return send(handler, page.encode(), "text/html; charset=utf-8")
        send(handler, body)

    return route


def write_entry(folder: Path, name: str, preset: str, sources: list[dict], **fields) -> dict:
    """A manifest entry for a reduced-width fixture architecture (categories and input of the real entry)."""
    real = json.loads((MANIFEST_DIR / f"{REAL[preset][0]}.json").read_text())
    entry = {
        "schema_version": 1,
        "name": name,
        "aliases": fields.pop("aliases", []),
        "preset": preset,
        "config": SMALL,
        "num_classes": 40,
        "categories": real["categories"],
        "input": real["input"],
        "license": {"code": "Apache-2.0"},
        "sources": sources,
        **fields,
    }
    (folder / f"{name}.json").write_text(json.dumps(entry))
    return entry


def url_source(url: str, **extra) -> dict:
    return {"kind": "url", "url": url, "filename": "model.pth", "format": "detectron2-pth", **extra}


@functools.lru_cache(maxsize=2)
def reference_state(name: str) -> dict[str, torch.Tensor]:
    return convert_reference_state_dict(read_pth(fixture(name)))


def assert_matches_fixture(model, name: str, *, backbone: bool = False) -> None:
    """The fixture's tensors, and the reference's outputs on the fixtures' first T=3 clip.

    The heads run on the reference's backbone features (exact); ``backbone`` also runs the backbone on the
    fixture frames (seconds on a small CPU, so once per preset).
    """
    reference = reference_state(name)
    assert list(model.state_dict()) == list(expected_order(model))
    assert model.state_dict().keys() == reference.keys()
    assert all(torch.equal(v, reference[k]) for k, v in model.state_dict().items())
    clip = load_file(fixture(name, "clip0"))
    feats = {k: clip[k] for k in ("res3", "res4", "res5")}
    with torch.no_grad():
        if backbone:
            frames = load_file(fixture(name, "input"))["frames"][:3]
            if model.config.input_format == "BGR":  # the fixture frames are already in the weights' order
                frames = frames.flip(1)
            ours = model.backbone_features(model.normalize(frames))
            for level, ref in feats.items():
                torch.testing.assert_close(ours[level], ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
        out = model.forward_clips(feats["res3"], feats["res4"], feats["res5"], 3, aux=False)
    for key in ("pred_logits", "pred_masks"):
        torch.testing.assert_close(out[key], clip[key], rtol=1e-5, atol=1e-5 * clip[key].abs().max().item())


def expected_order(model) -> list[str]:
    return list(weights.expected_shapes(model.config))


def partial_files(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "cache").rglob("*") if p.name.endswith(".part") or ".staging-" in p.name]


# ----------------------------------------------------------------------------------------------- the manifest


def test_shipped_manifest_entries() -> None:
    assert weights.model_names() == ["ifc-r101-ytvis19", "ifc-r50-coco", "ifc-r50-ytvis19", "shapes-demo"]
    for alias, name in [
        ("r50", "ifc-r50-ytvis19"),
        ("R50-YTVIS19", "ifc-r50-ytvis19"),
        ("ifc_r50", "ifc-r50-ytvis19"),
        ("r101", "ifc-r101-ytvis19"),
        ("r101-ytvis19", "ifc-r101-ytvis19"),
        ("r50-coco", "ifc-r50-coco"),
    ]:
        assert weights.get_model_entry(alias).name == name
    for preset, (name, _) in REAL.items():
        entry = weights.get_model_entry(name)
        assert entry.preset == preset and entry.num_classes == 40 and len(entry.categories) == 40
        assert entry.categories[:2] + entry.categories[-2:] == YTVIS19_FIRST_LAST
        assert len(set(entry.categories)) == 40
        config, preset_config = entry.model_config(), PRESETS[preset]
        assert (config.input_format, config.pixel_mean, config.pixel_std) == (
            preset_config.input_format,
            preset_config.pixel_mean,
            preset_config.pixel_std,
        )
        assert (entry.input["min_size_test"], entry.input["max_size_test"]) == (360, 1333)
        assert entry.license["code"] == "Apache-2.0" and "authors" in entry.license["weights"]
        assert entry.reported["by"] == "the authors"
        assert [s.kind for s in entry.sources] == ["gdrive", "gdrive"]
        assert all(
            s.sha256 is None and s.size is None and s.format == "detectron2-pth" for s in entry.sources
        )
        assert "structure" in entry.extra["reference_checkpoint"]["integrity"]
    r50, r101 = weights.get_model_entry("r50"), weights.get_model_entry("r101")
    assert r50.sources[0].file_id == "1dwkg91omYLmcIA7ze6MZdZj4H5mWT5Fv"
    assert r101.sources[0].file_id == "1s2GnnpDqYIcP-_wX1Rm5vO3VnrfotaCv"
    assert [(r["window"], r["AP"], r["fps"]) for r in r50.reported["results"]] == [
        (5, 41.6, 46.5),
        (36, 42.8, 107.1),
    ]
    assert [(r["window"], r["AP"], r["fps"]) for r in r101.reported["results"]] == [(36, 44.6, 89.4)]
    coco = weights.get_model_entry("r50-coco")
    assert coco.num_classes == 80 and len(coco.categories) == 80 and coco.reported is None


@pytest.mark.parametrize("preset", ["r50", "r101"])
def test_real_entries_match_full_size_reference_schemas(preset: str) -> None:
    name, schema_file = REAL[preset]
    path = REFERENCE / schema_file
    if not path.exists():
        pytest.skip(f"{path} not found")
    schema = json.loads(path.read_text())
    shapes = {new: tuple(k["shape"]) for k in schema["keys"] if (new := reference_key_to_sdk(k["key"]))}
    entry = weights.get_model_entry(name)
    assert weights.expected_shapes(entry.model_config()) == shapes
    weights.check_structure(entry, shapes, path)  # passes
    meta = entry.extra["reference_checkpoint"]
    assert (meta["state_dict_keys"], meta["parameters"]) == (schema["num_keys"], schema["num_parameters"])
    config = schema["config"]
    assert entry.input["input_format"] == config["INPUT.FORMAT"]
    assert list(entry.model_config().pixel_mean) == config["PIXEL_MEAN"]
    assert entry.input["min_size_test"] == config["INPUT.MIN_SIZE_TEST"]
    other = REAL["r101" if preset == "r50" else "r50"][0]
    with pytest.raises(CheckpointError, match="wrong architecture"):
        weights.check_structure(weights.get_model_entry(other), shapes, path)


def test_manifest_validation_errors(isolated) -> None:
    folder = isolated / "manifest"
    write_entry(folder, "dup", "r50", [], aliases=["r50"])
    with pytest.raises(WeightsError, match="'r50' is also used"):
        weights.manifest()
    (folder / "dup.json").unlink()
    write_entry(folder, "escape", "r50", [{"kind": "bundled", "path": "../outside.safetensors"}])
    with pytest.raises(WeightsError, match="leaves the manifest folder"):
        weights.manifest()
    (folder / "escape.json").unlink()
    write_entry(folder, "escape", "r50", [{"kind": "ftp", "url": "ftp://x"}])
    with pytest.raises(WeightsError, match="source kind 'ftp'"):
        weights.manifest()
    write_entry(folder, "escape", "r50", [{"kind": "hf", "repo_id": "me/model", "revision": "main"}])
    with pytest.raises(WeightsError, match="pinned to a commit"):
        weights.manifest()


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(WeightsError) as info:
        ifc_sdk.load_model("r5O", device="cpu")
    message = str(info.value)
    assert "unknown model 'r5O'" in message and "Did you mean" in message
    for name in weights.model_names():
        assert name in message


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


def test_cache_location(monkeypatch, tmp_path) -> None:
    assert hub.cache_root() == tmp_path / "cache"
    monkeypatch.delenv("IFC_SDK_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.cache_root() == tmp_path / "xdg" / "ifc_sdk"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert hub.cache_root() == Path.home() / ".cache" / "ifc_sdk"


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


def test_drive_confirmation_page_without_gdown(isolated, server, monkeypatch) -> None:
    pth = fixture("r101")
    server.routes["/download"] = drive_route({"DRIVE-R101": pth.read_bytes()})
    monkeypatch.setenv("IFC_SDK_GDRIVE_URL", server.url("/download"))
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
    assert [urllib.parse.parse_qs(urllib.parse.urlsplit(r).query).get("uuid") for r in server.requests] == [
        None,
        ["0f1e"],
    ]
    record = json.loads((isolated / "cache/models/fixture-r101" / weights.RECORD_NAME).read_text())
    assert record["original"]["verified_by"] == "sha256" and record["source"]["file_id"] == "DRIVE-R101"


def test_drive_web_page_instead_of_file(isolated, server, monkeypatch) -> None:
    server.routes["/download"] = drive_route({})
    monkeypatch.setenv("IFC_SDK_GDRIVE_URL", server.url("/download"))
    write_entry(isolated / "manifest", "quota", "r50", [{"kind": "gdrive", "file_id": "GONE"}])
    with pytest.raises(WeightsError, match="web page"):
        weights.fetch("quota", progress=False)
    assert not partial_files(isolated)


def test_drive_through_gdown(isolated, monkeypatch) -> None:
    set_offline(monkeypatch, False)
    pth, calls = fixture("r50"), []

    def download(id=None, output=None, quiet=False, **kwargs):  # noqa: A002 - gdown's signature
        calls.append((id, Path(output)))
        shutil.copyfile(pth, output)
        return output

    monkeypatch.setitem(sys.modules, "gdown", types.SimpleNamespace(download=download))
    write_entry(isolated / "manifest", "fixture-gd", "r50", [{"kind": "gdrive", "file_id": "GDOWN-ID"}])
    assert_matches_fixture(ifc_sdk.load_model("fixture-gd", device="cpu"), "r50")
    ((file_id, output),) = calls
    assert file_id == "GDOWN-ID" and output.parent == isolated / "cache/downloads/fixture-gd/.partial"
    assert not output.exists()  # the temporary download is gone once converted


def test_real_entry_full_size_through_mirrored_drive(isolated, server, monkeypatch) -> None:
    """`load_model("r50")` end to end with a full-size checkpoint laid out as the released one (zeros)."""
    path = REFERENCE / REAL["r50"][1]
    if not path.exists():
        pytest.skip(f"{path} not found")
    keys = json.loads(path.read_text())["keys"]
    pth = isolated / "full.pth"
    torch.save({"model": {k["key"]: torch.zeros(k["shape"]) for k in keys}, "iteration": 1}, pth)
    server.routes["/download"] = drive_route({"1dwkg91omYLmcIA7ze6MZdZj4H5mWT5Fv": pth.read_bytes()})
    monkeypatch.setenv("IFC_SDK_GDRIVE_URL", server.url("/download"))
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
    server.routes["/download"] = drive_route(
        {s.file_id: data for s in weights.get_model_entry("r101").sources}
    )
    monkeypatch.setenv("IFC_SDK_GDRIVE_URL", server.url("/download"))
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
