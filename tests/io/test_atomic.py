"""Safe writes: normal permissions, typed errors naming the path, nothing half-written."""

from __future__ import annotations

import os
import stat

import pytest

from ifc_sdk.errors import OutputError
from ifc_sdk.io.atomic import atomic_path, atomic_write_text, ensure_dir, staging_dir


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_written_files_follow_the_umask(tmp_path, umask022):
    atomic_write_text(tmp_path / "a.json", "{}")
    assert mode(tmp_path / "a.json") == 0o644
    os.umask(0o077)
    atomic_write_text(tmp_path / "b.json", "{}")
    assert mode(tmp_path / "b.json") == 0o600


def test_staging_folders_follow_the_umask(tmp_path, umask022):
    with staging_dir(tmp_path / "model") as tmp:
        assert mode(tmp) == 0o755
        assert tmp.parent == tmp_path and tmp.name.startswith(".model.staging-")
    assert not tmp.exists()


def test_folder_given_as_file_is_an_output_error(tmp_path):
    (tmp_path / "out.json").mkdir()
    with pytest.raises(OutputError, match="out.json: the output file is an existing folder"):
        atomic_write_text(tmp_path / "out.json", "{}")


def test_file_given_as_folder_is_an_output_error(tmp_path):
    (tmp_path / "d").write_text("user data")
    with pytest.raises(OutputError, match="the output folder is an existing file"):
        ensure_dir(tmp_path / "d")
    with pytest.raises(OutputError, match=r"d: .*file"):
        atomic_write_text(tmp_path / "d" / "x.json", "{}")
    assert (tmp_path / "d").read_text() == "user data"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_an_output_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="permission denied"):
            atomic_write_text(ro / "x.json", "{}")
    finally:
        ro.chmod(0o755)


def test_failure_inside_the_block_leaves_the_target_and_no_temp(tmp_path):
    target = tmp_path / "r.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_output_error_is_an_os_error_and_names_the_cause(tmp_path):
    err = OutputError(tmp_path / "x", "cannot write: disk full")
    assert isinstance(err, OSError) and str(err) == f"{tmp_path / 'x'}: cannot write: disk full"
