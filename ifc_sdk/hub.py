"""Where pretrained weights live and how their bytes arrive: cache paths, offline mode, hashing, downloads.

Nothing here knows about IFC models; `ifc_sdk.weights` decides what to fetch and how to check what it got.

* Cache: ``$IFC_SDK_CACHE`` if set, else ``$XDG_CACHE_HOME/ifc_sdk``, else ``~/.cache/ifc_sdk``. Files from the
  Hugging Face Hub stay in the Hub's own cache (``$HF_HUB_CACHE``, default ``~/.cache/huggingface/hub``).
* Offline: ``HF_HUB_OFFLINE=1`` (the Hub's switch) or ``IFC_SDK_OFFLINE=1``; only local sources are used then.
* Every download goes to a temporary file in the cache folder; the caller verifies it before anything is moved
  into place, and removes it whatever happens.
"""

from __future__ import annotations

import hashlib
import html.parser
import http.cookiejar
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ifc_sdk.errors import WeightsError

ENV_CACHE = "IFC_SDK_CACHE"
ENV_OFFLINE = "IFC_SDK_OFFLINE"
# Base URL of the Google Drive download endpoint; set it to a mirror (tests use a server on 127.0.0.1).
ENV_GDRIVE_URL = "IFC_SDK_GDRIVE_URL"
GDRIVE_URL = "https://drive.usercontent.google.com/download"
USER_AGENT = "ifc-sdk/0.1 (+https://github.com/sukjunhwang/IFC)"
CHUNK = 1 << 20
TIMEOUT_S = 60
_TRUE = {"1", "true", "yes", "on"}


def cache_root() -> Path:
    """The ifc_sdk cache folder: ``$IFC_SDK_CACHE``, else ``$XDG_CACHE_HOME/ifc_sdk``, else ``~/.cache/ifc_sdk``."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base).expanduser() if base else Path.home() / ".cache") / "ifc_sdk"


def hf_cache_dir() -> Path:
    """The Hugging Face Hub cache, read from the environment at call time (as the Hub resolves it)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


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


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_file(path: Path, *, sha256: str | None = None, size: int | None = None, what: str = "file") -> str:
    """Check ``path`` against a known size and sha256 (either may be None); return the sha256 it has."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        kind = "truncated" if actual_size < size else "too long"
        raise WeightsError(f"{what} is {kind}: {actual_size} bytes, expected {size} ({path})")
    digest = sha256_file(path)
    if sha256 is not None and digest != sha256.lower():
        raise WeightsError(
            f"{what} has sha256 {digest}, expected {sha256.lower()} (corrupted or tampered download, {path})"
        )
    return digest


def temp_path(folder: Path, name: str) -> Path:
    """A new empty temporary file in ``folder`` (created if needed), named after ``name``."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    os.close(fd)
    return Path(tmp)


def install_folder(staging: Path, final: Path) -> None:
    """Move the complete folder ``staging`` to ``final``; an existing ``final`` is replaced only now."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        backup = final.with_name(f".{final.name}.old")
        shutil.rmtree(backup, ignore_errors=True)
        final.rename(backup)
        staging.rename(final)
        shutil.rmtree(backup, ignore_errors=True)
    else:
        staging.rename(final)


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


def _stream(response, dest: Path, desc: str, progress: bool) -> tuple[int, str]:
    """Copy an open urllib response into ``dest``; return (bytes written, content type)."""
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
    return written, response.headers.get("Content-Type", "") or ""


def _looks_like_html(path: Path, content_type: str) -> bool:
    if "text/html" in content_type.lower():
        return True
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


def _open(opener, url: str):
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        return opener.open(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        raise WeightsError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise WeightsError(f"{url}: cannot connect ({getattr(exc, 'reason', exc)})") from exc


def download_url(url: str, folder: Path, name: str, *, progress: bool = True) -> Path:
    """Download an http(s) or file URL into a new temporary file in ``folder``; return its path.

    The temporary file is removed if the transfer fails or the server answers with a web page.
    """
    if urllib.parse.urlsplit(url).scheme not in ("http", "https", "file"):
        raise WeightsError(f"unsupported URL scheme in {url!r} (http, https and file URLs are supported)")
    tmp = temp_path(folder, name)
    try:
        with _open(urllib.request.build_opener(), url) as response:
            _, content_type = _stream(response, tmp, name, progress)
        if _looks_like_html(tmp, content_type):
            raise WeightsError(f"{url} answered with a web page instead of the file")
        return tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------------------------- Google Drive


class _DriveForm(html.parser.HTMLParser):
    """Collects the action and hidden fields of Drive's "can't scan this file for viruses" form."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._in_form = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and (attrs.get("id") == "download-form" or self.action is None):
            self.action, self._in_form = attrs.get("action"), True
        elif tag == "input" and self._in_form and attrs.get("name"):
            self.fields[attrs["name"]] = attrs.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False


def _confirm_request(page: str, base: str, file_id: str) -> tuple[str, dict[str, str]] | None:
    """The next request a Drive warning page asks for: (url, params), or None if the page has no way on."""
    form = _DriveForm()
    form.feed(page)
    if form.action and form.fields:
        return urllib.parse.urljoin(base, form.action), form.fields
    match = re.search(r"confirm=([0-9A-Za-z_-]+)", page)  # older pages: a link with a confirm token
    if match:
        return base, {"id": file_id, "export": "download", "confirm": match.group(1)}
    return None


def download_gdrive(file_id: str, folder: Path, name: str, *, progress: bool = True) -> Path:
    """Download a public Google Drive file into a new temporary file in ``folder``; return its path.

    Uses ``gdown`` (the ``gdrive`` extra) when it is installed and the endpoint is Google's; otherwise plain
    HTTPS against the ``drive.usercontent.google.com`` endpoint (or ``$IFC_SDK_GDRIVE_URL``), following the
    confirmation page Drive shows for files too large to virus-scan.
    """
    base = os.environ.get(ENV_GDRIVE_URL) or GDRIVE_URL
    if base == GDRIVE_URL:
        try:
            import gdown
        except ImportError:
            gdown = None
        if gdown is not None:
            return _download_with_gdown(gdown, file_id, folder, name, progress)
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    url, params = base, {"id": file_id, "export": "download", "confirm": "t"}
    for _ in range(3):
        full = f"{url}?{urllib.parse.urlencode(params)}"
        tmp = temp_path(folder, name)
        try:
            with _open(opener, full) as response:
                _, content_type = _stream(response, tmp, name, progress)
            if not _looks_like_html(tmp, content_type):
                return tmp
            page = tmp.read_text(errors="replace")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        tmp.unlink(missing_ok=True)
        step = _confirm_request(page, url, file_id)
        if step is None:
            break
        url, params = step
    raise WeightsError(
        f"Google Drive did not serve file {file_id} (it answered with a web page: the file may "
        "be over its download quota, removed, or not shared publicly)"
    )


def _download_with_gdown(gdown, file_id: str, folder: Path, name: str, progress: bool) -> Path:
    tmp = temp_path(folder, name)
    try:
        result = gdown.download(id=file_id, output=str(tmp), quiet=not progress)
        if result is None or not tmp.is_file() or tmp.stat().st_size == 0:
            raise WeightsError(f"gdown could not download Google Drive file {file_id}")
        if _looks_like_html(tmp, ""):
            raise WeightsError(f"Google Drive answered with a web page instead of file {file_id}")
        return tmp
    except WeightsError:
        tmp.unlink(missing_ok=True)
        raise
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, Exception):
            raise WeightsError(
                f"gdown could not download Google Drive file {file_id}: {type(exc).__name__}: {exc}"
            ) from exc
        raise


# ----------------------------------------------------------------------------------------------- Hugging Face Hub

_SHA256 = re.compile(r"[0-9a-f]{64}")


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
