"""Fault injection shared by the training tests."""

from __future__ import annotations

import builtins
import errno
import os
from collections.abc import Callable
from types import ModuleType

import pytest


class FullDiskFile:
    """A file opened as usual on a disk that is full: every write fails with ENOSPC."""

    def __init__(self, *args, **kwargs) -> None:
        self.file = builtins.open(*args, **kwargs)

    def write(self, data) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str):
        return getattr(self.file, name)

    def __enter__(self) -> FullDiskFile:
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> Callable[[ModuleType], None]:
    """``full_disk(module)``: files that ``module`` opens from now on are on a full disk."""

    def patch(module: ModuleType) -> None:
        monkeypatch.setattr(module, "open", FullDiskFile, raising=False)

    return patch
