"""Transport: what a failed transfer says, and that a destination that cannot be written is an `OutputError`."""

from __future__ import annotations

import errno
import os
import stat
import sys
import types

import pytest

from ifc_sdk import hub
from ifc_sdk.errors import OutputError, WeightsError


def test_missing_file_url_says_no_such_file(tmp_path) -> None:
    gone = tmp_path / "model_final.pth"
    with pytest.raises(WeightsError) as info:
        hub.download_url(gone.as_uri(), tmp_path / "downloads", "model.pth", progress=False)
    assert str(info.value) == f"{gone}: no such file (source {gone.as_uri()})"
    assert not (tmp_path / "downloads").exists()


def test_file_url_is_copied_into_a_temporary_file(tmp_path) -> None:
    src = tmp_path / "model.pth"
    src.write_bytes(b"\x80weights" * 1000)
    old = os.umask(0o022)
    try:
        tmp = hub.download_url(src.as_uri(), tmp_path / "downloads", "model.pth", progress=False)
    finally:
        os.umask(old)
    assert tmp.parent == tmp_path / "downloads" and tmp.name.startswith(".model.pth.")
    assert tmp.name.endswith(hub.PART_SUFFIX) and tmp.read_bytes() == src.read_bytes()
    assert stat.S_IMODE(tmp.stat().st_mode) == 0o644


def test_web_page_instead_of_the_file(tmp_path) -> None:
    page = tmp_path / "page.pth"
    page.write_text("<!DOCTYPE html><html><p>Sign in</p></html>")
    with pytest.raises(WeightsError, match="answered with a web page"):
        hub.download_url(page.as_uri(), tmp_path / "downloads", "model.pth", progress=False)
    assert list((tmp_path / "downloads").iterdir()) == []


def gdown_raising(monkeypatch, exc: BaseException) -> None:
    def download(id=None, output=None, quiet=False, **kwargs):  # noqa: A002 - gdown's signature
        with open(output, "wb") as f:
            f.write(b"partial")
        raise exc

    monkeypatch.setitem(sys.modules, "gdown", types.SimpleNamespace(download=download))


def test_gdown_disk_full_is_an_output_error(tmp_path, monkeypatch) -> None:
    gdown_raising(monkeypatch, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    with pytest.raises(OutputError, match="cannot write the download of Google Drive file ID: .*disk full"):
        hub.download_gdrive("ID", tmp_path / "downloads", "model.pth", progress=False)
    assert list((tmp_path / "downloads").iterdir()) == []


def test_gdown_network_error_is_a_weights_error(tmp_path, monkeypatch) -> None:
    """requests' ConnectionError is an OSError without errno: a failed transfer, not a full disk."""
    gdown_raising(monkeypatch, OSError("Max retries exceeded with url: /uc?id=ID"))
    with pytest.raises(WeightsError, match="gdown could not download Google Drive file ID: .*Max retries"):
        hub.download_gdrive("ID", tmp_path / "downloads", "model.pth", progress=False)
    assert list((tmp_path / "downloads").iterdir()) == []


def test_download_folder_that_is_a_file(tmp_path) -> None:
    (tmp_path / "downloads").write_text("user data")
    with pytest.raises(OutputError, match="existing file"):
        hub.temp_path(tmp_path / "downloads", "model.pth")
    assert (tmp_path / "downloads").read_text() == "user data"
