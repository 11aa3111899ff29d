"""How the bytes of pretrained weights arrive: HTTP(S) and file URLs, Google Drive (through ``gdown``) and the
Hugging Face Hub, and whether downloads are allowed at all.

Nothing here knows about IFC models or the ifc_sdk cache: `ifc_sdk.weights` decides what to fetch, where the
temporary file goes, and how to check what arrived.

* Offline: ``HF_HUB_OFFLINE=1`` (the Hub's switch) or ``IFC_SDK_OFFLINE=1``; only local sources are used then.
* Every download goes to a new temporary ``.part`` file in the folder the caller names; it is removed if the
  transfer fails. Files from the Hub stay in the Hub's own cache (``$HF_HUB_CACHE``, default
  ``~/.cache/huggingface/hub``).
* Filesystem failures while writing a download (disk full, read-only folder) are `OutputError` naming the path;
  everything else that goes wrong in a transfer is a `WeightsError` naming the source.
"""

from __future__ import annotations

import errno
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ifc_sdk.errors import OutputError, WeightsError
from ifc_sdk.io.atomic import ensure_dir, normal_mode, output_error

ENV_OFFLINE = "IFC_SDK_OFFLINE"
USER_AGENT = "ifc-sdk/0.1 (+https://github.com/sukjunhwang/IFC)"
PART_SUFFIX = ".part"
CHUNK = 1 << 20
TIMEOUT_S = 60
_TRUE = {"1", "true", "yes", "on"}
# errno values that mean "the destination cannot be written", as opposed to a failed transfer.
_FILESYSTEM_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EEXIST,
}


def offline_reason() -> str | None:
    """Why downloads are disabled (the variable that says so), or None when they are allowed."""
    for var in (ENV_OFFLINE, "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var}=1"
    from huggingface_hub import constants

    if getattr(constants, "HF_HUB_OFFLINE", False):
        return "HF_HUB_OFFLINE=1"
    return None


def is_offline() -> bool:
    return offline_reason() is not None


def temp_path(folder: Path, name: str) -> Path:
    """A new empty temporary file ``.<name>.<random>.part`` in ``folder`` (created if needed)."""
    ensure_dir(folder, "download folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=PART_SUFFIX, dir=folder)
    except OSError as exc:
        raise output_error(folder / name, exc, "cannot create the download") from exc
    os.close(fd)
    normal_mode(tmp)
    return Path(tmp)


def _write_error(exc: OSError, dest: Path, what: str) -> OutputError | None:
    """`OutputError` when ``exc`` says the destination cannot be written; None for a transfer failure."""
    if isinstance(exc, OutputError):
        return exc
    if exc.errno in _FILESYSTEM_ERRNOS:
        return output_error(dest, exc, f"cannot write the download of {what}")
    return None


# ----------------------------------------------------------------------------------------------- HTTP / file


def _progress_bar(total: int | None, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=desc,
        disable=not enabled,
        dynamic_ncols=True,
    )


def _stream(response, dest: Path, desc: str, progress: bool) -> str:
    """Copy an open urllib response into ``dest``; return its content type."""
    length = response.headers.get("Content-Length")
    expected = int(length) if length and length.isdigit() else None
    written = 0
    with open(dest, "wb") as out, _progress_bar(expected, desc, progress) as bar:
        while chunk := response.read(CHUNK):
            out.write(chunk)
            written += len(chunk)
            bar.update(len(chunk))
    if expected is not None and written != expected:
        raise WeightsError(f"download of {desc} is truncated: received {written} of {expected} bytes")
    return response.headers.get("Content-Type", "") or ""


def _looks_like_html(path: Path, content_type: str) -> bool:
    if "text/html" in content_type.lower():
        return True
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


def _open(url: str):
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        return urllib.request.build_opener().open(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        raise WeightsError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise WeightsError(f"{url}: cannot connect ({getattr(exc, 'reason', exc)})") from exc


def download_url(url: str, folder: Path, name: str, *, progress: bool = True) -> Path:
    """Download an http(s) or file URL into a new temporary file in ``folder``; return its path.

    The temporary file is removed if the transfer fails or the server answers with a web page.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https", "file"):
        raise WeightsError(f"unsupported URL scheme in {url!r} (http, https and file URLs are supported)")
    if parts.scheme == "file":
        local = Path(urllib.request.url2pathname(parts.path))
        if not local.is_file():
            raise WeightsError(f"{local}: no such file (source {url})")
    tmp = temp_path(folder, name)
    try:
        with _open(url) as response:
            content_type = _stream(response, tmp, name, progress)
        if _looks_like_html(tmp, content_type):
            raise WeightsError(f"{url} answered with a web page instead of the file")
        return tmp
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        error = _write_error(exc, tmp, url)
        if error is None:
            raise WeightsError(f"{url}: the transfer failed ({exc})") from exc
        raise error from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------------------------- Google Drive


def download_gdrive(file_id: str, folder: Path, name: str, *, progress: bool = True) -> Path:
    """Download a public Google Drive file with ``gdown`` into a new temporary file in ``folder``.

    gdown follows the confirmation page Drive shows for files too large to virus-scan; a web page served
    instead of the file (quota exceeded, not shared) is refused. The temporary file is removed on failure.
    """
    import gdown

    tmp = temp_path(folder, name)
    what = f"Google Drive file {file_id}"
    try:
        result = gdown.download(id=file_id, output=str(tmp), quiet=not progress)
        if result is None or not tmp.is_file() or tmp.stat().st_size == 0:
            raise WeightsError(f"gdown could not download {what}")
        if _looks_like_html(tmp, ""):
            raise WeightsError(f"Google Drive answered with a web page instead of {what}")
        return tmp
    except WeightsError:
        tmp.unlink(missing_ok=True)
        raise
    except OSError as exc:  # requests' errors are OSErrors too: only errno says it is the destination
        tmp.unlink(missing_ok=True)
        error = _write_error(exc, tmp, what)
        if error is None:
            raise WeightsError(f"gdown could not download {what}: {type(exc).__name__}: {exc}") from exc
        raise error from exc
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise WeightsError(f"gdown could not download {what}: {type(exc).__name__}: {exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------------------------- Hugging Face Hub


def hf_cache_dir() -> Path:
    """The Hugging Face Hub cache, read from the environment at call time (as the Hub resolves it)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _hf_error(exc: Exception, what: str) -> WeightsError:
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    if isinstance(exc, LocalEntryNotFoundError | OfflineModeIsEnabled):
        return WeightsError(
            f"{what} is not in the Hugging Face cache ({hf_cache_dir()}) and downloads are "
            f"disabled or failed ({offline_reason() or type(exc).__name__})"
        )
    return WeightsError(f"{what}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


def hf_cached_file(repo_id: str, filename: str, revision: str | None) -> Path | None:
    """The file's path in the Hub cache, or None (never touches the network)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, cache_dir=hf_cache_dir(), revision=revision)
    return Path(found) if isinstance(found, str) else None


def hf_file(repo_id: str, filename: str, revision: str | None, *, progress: bool = True) -> Path:
    """Download one file of a Hub model repo into the Hub cache (or find it there when offline)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    if not progress:
        disable_progress_bars()
    try:
        return Path(
            hf_hub_download(
                repo_id,
                filename,
                revision=revision,
                cache_dir=hf_cache_dir(),
                library_name="ifc_sdk",
                local_files_only=is_offline(),
            )
        )
    except Exception as exc:
        raise _hf_error(exc, f"hf://{repo_id}@{revision or 'main'}/{filename}") from exc
    finally:
        if not progress:
            enable_progress_bars()


def hf_snapshot(repo_id: str, revision: str | None, files: list[str]) -> Path:
    """Download (or, offline, find) ``files`` of a Hub model repo; return the snapshot folder."""
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                repo_id,
                revision=revision,
                cache_dir=hf_cache_dir(),
                allow_patterns=files,
                library_name="ifc_sdk",
                local_files_only=is_offline(),
            )
        )
    except Exception as exc:
        raise _hf_error(exc, f"hf://{repo_id}@{revision or 'main'}") from exc
