"""Shared by the tests of `ifc_sdk.weights` and `ifc_sdk.hub`: an isolated cache, local sources, fixtures.

Nothing reaches the network: sources are file:// URLs, an HTTP server on 127.0.0.1 started by the test, a fake
``gdown`` and a pre-filled Hugging Face cache with ``HF_HUB_OFFLINE=1``; a socket guard refuses any other
address. Test modules import the fixtures they use from here (``*_fixture``; ``isolated`` is autouse).
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import importlib
import json
import socket
import sys
import threading
import types
import urllib.parse
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ifc_sdk import weights
from ifc_sdk.checkpoint import convert_reference_state_dict, read_pth

# Not `from conftest import REFERENCE`: another folder's conftest.py may be the module named conftest by now.
REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "reference"
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


# ----------------------------------------------------------------------------------------------- isolation


@pytest.fixture(autouse=True, scope="module", name="one_thread")
def one_thread_fixture():
    """Small tensors: one intra-op thread is faster than several on a shared CPU (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, name="isolated")
def isolated_fixture(tmp_path, monkeypatch):
    """Cache, Hub cache and extra manifest in tmp; offline by default; sockets only to 127.0.0.1."""
    monkeypatch.setenv("IFC_SDK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    (tmp_path / "manifest").mkdir()
    monkeypatch.setenv("IFC_SDK_MANIFEST", str(tmp_path / "manifest"))
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


@pytest.fixture(name="server")
def server_fixture(monkeypatch):
    set_offline(monkeypatch, False)
    srv = Server()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


class FakeGdown:
    """Stands in for the ``gdown`` module: ``files`` maps a Drive file id to the bytes it serves."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.calls: list[tuple[str, Path]] = []

    def download(self, id=None, output=None, quiet=False, **kwargs):  # noqa: A002 - gdown's signature
        self.calls.append((id, Path(output)))
        if id not in self.files:
            raise RuntimeError(f"Failed to retrieve file url for {id}")  # gdown's FileURLRetrievalError
        Path(output).write_bytes(self.files[id])
        return output


def fake_gdown(monkeypatch, files: dict[str, bytes]) -> FakeGdown:
    """Install a `FakeGdown` as ``gdown`` and allow downloads."""
    fake = FakeGdown(files)
    monkeypatch.setitem(sys.modules, "gdown", types.SimpleNamespace(download=fake.download))
    set_offline(monkeypatch, False)
    return fake


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
    """Temporary files and folders left in the cache."""
    return [
        p
        for p in (tmp_path / "cache").rglob("*")
        if p.name.endswith(".part") or ".staging-" in p.name or p.name.endswith(".old")
    ]


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
