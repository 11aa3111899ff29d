"""Safe writes: temporary files beside the target renamed into place, with the permissions of ordinary files.

Every writer of the SDK goes through here, so three rules hold everywhere:

- a reader never sees a half-written file (write to a temp file in the target's folder, then `os.replace`);
- what is written gets the permissions any file a user's program creates gets (``0o666 & ~umask``, folders
  ``0o777 & ~umask``), not the 0600/0700 of `tempfile`;
- filesystem failures become `OutputError` naming the path and the cause (read-only, disk full, a file where a
  folder is expected), never a bare `OSError` from deep inside.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ifc_sdk.errors import OutputError


def current_umask() -> int:
    """The process umask (read without changing it for longer than one call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def normal_mode(path: str | os.PathLike, *, folder: bool = False) -> None:
    """Give ``path`` the mode a newly created file (or folder) gets under the current umask."""
    os.chmod(path, (0o777 if folder else 0o666) & ~current_umask())


def describe_os_error(exc: OSError) -> str:
    """A short cause for a filesystem error ('disk full', 'permission denied', ...)."""
    names = {
        errno.ENOSPC: "no space left on the device (disk full)",
        errno.EDQUOT: "disk quota exceeded",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.EROFS: "read-only file system",
        errno.ENOTDIR: "a path component is a file, not a folder",
        errno.EISDIR: "is a folder, not a file",
        errno.EEXIST: "already exists",
        errno.ENOENT: "no such file or folder",
    }
    return names.get(exc.errno, exc.strerror or str(exc))


def output_error(path: str | os.PathLike, exc: OSError, action: str = "cannot write") -> OutputError:
    """`OutputError` for ``exc`` raised while writing ``path``."""
    return OutputError(path, f"{action}: {describe_os_error(exc)}", exc)


def ensure_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Create folder ``path`` (and its parents) if needed; an existing file there is an `OutputError`.

    Only creates: nothing already in the folder is touched.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(path, f"the {what} is an existing file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(path, exc, f"cannot create the {what}") from exc
    return path


def ensure_file_target(path: str | os.PathLike, what: str = "output file") -> Path:
    """Check that ``path`` can be written as a file: an existing folder there is an `OutputError`."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(path, f"the {what} is an existing folder, not a file")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it to ``path`` if the block succeeds.

    On any exception the temporary file is removed and ``path`` is left untouched, so a reader never sees a
    half-written file. ``suffix`` (default: the target's) keeps writers that infer the format from the name
    working. The file ends with the mode of a normal new file; filesystem failures raise `OutputError`.
    """
    path = ensure_file_target(path)
    ensure_dir(path.parent)
    suffix = path.suffix if suffix is None else suffix
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise output_error(path, exc) from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        normal_mode(tmp_path)
        os.replace(tmp_path, path)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        if isinstance(exc, OutputError):
            raise
        raise output_error(path, exc) from exc
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def staging_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside folder ``path`` (mode of a normal new folder) for a writer to fill;
    the caller moves what it wrote into place. Removed on exit whatever happens."""
    import shutil

    path = Path(path)
    ensure_dir(path.parent, "parent folder")
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.staging-", dir=path.parent))
    except OSError as exc:
        raise output_error(path, exc) from exc
    normal_mode(tmp, folder=True)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def sweep_temporaries(folder: str | os.PathLike, targets: str) -> list[Path]:
    """Remove what a killed writer left in ``folder``: `atomic_path`'s ``.<target>.tmp-XXXXXXXX[.ext]`` files and
    `staging_dir`'s ``.<target>.staging-XXXXXXXX`` folders, for target names matching the regex ``targets``.

    Only names of that exact shape (8 `tempfile` characters) are touched, so a user's own files stay. Call it
    when starting a run that owns ``folder`` (no other writer is active there). Returns what was removed.
    """
    import re
    import shutil

    pattern = re.compile(rf"\.(?:{targets})\.(?:tmp|staging)-[a-z0-9_]{{8}}(?:\.[A-Za-z0-9]+)?")
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in sorted(folder.iterdir()):
        if not pattern.fullmatch(entry.name):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError as exc:
            raise output_error(entry, exc, "cannot remove a stale temporary file") from exc
        removed.append(entry)
    return removed
