"""Fault injection shared by tests: a full disk for the files an SDK writer creates or opens."""

from __future__ import annotations

import builtins
import errno
import functools
import os
import pathlib
from types import ModuleType


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


class FullDiskFile:
    """A file opened as usual on a disk with ``capacity`` bytes free: writes beyond it fail with ENOSPC."""

    def __init__(self, *args, capacity: int = 0, **kwargs) -> None:
        self.file = builtins.open(*args, **kwargs)
        self.capacity, self.written = capacity, 0

    def write(self, data) -> int:
        if self.written + len(data) > self.capacity:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.written += len(data)
        return self.file.write(data)

    def __getattr__(self, name: str):
        return getattr(self.file, name)

    def __enter__(self) -> FullDiskFile:
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()


def full_disk_open(monkeypatch, module: ModuleType, capacity: int = 0) -> None:
    """Files that ``module`` opens with ``open`` from now on are on a disk with ``capacity`` bytes free."""
    monkeypatch.setattr(module, "open", functools.partial(FullDiskFile, capacity=capacity), raising=False)
