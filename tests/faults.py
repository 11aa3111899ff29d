"""Fault injection shared by tests: a full disk for the files an SDK writer creates."""

from __future__ import annotations

import errno
import os
import pathlib


def disk_full_for(monkeypatch, name: str) -> None:
    """``Path.write_bytes``/``write_text`` raise ENOSPC for the temporary file of target ``name``
    (``.<name>.tmp-*``, see `ifc_sdk.io.atomic.atomic_path`); every other write goes through."""
    for method in ("write_bytes", "write_text"):
        real = getattr(pathlib.Path, method)

        def write(self, data, *args, _real=real, **kwargs):
            if self.name.startswith(f".{name}.tmp-"):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return _real(self, data, *args, **kwargs)

        monkeypatch.setattr(pathlib.Path, method, write)
