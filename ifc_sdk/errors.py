"""The exceptions ifc_sdk raises on its public paths.

Every error names what was expected, what was found and, where there is one, the file involved, so a user
can act on the message without reading a traceback.
"""

from __future__ import annotations

import os


class IFCError(Exception):
    """Base class of every error raised by ifc_sdk."""


class ConfigError(IFCError, ValueError):
    """An argument or configuration value is invalid (raised before any work starts)."""


class OutputError(IFCError, OSError):
    """An output file or folder cannot be written (exists as the wrong kind, read-only, disk full, ...).

    Also an `OSError`, so callers that already catch filesystem errors keep working; ``path`` is the file or
    folder involved and ``cause`` the underlying error, if any.
    """

    def __init__(self, path: str | os.PathLike, message: str, cause: BaseException | None = None) -> None:
        self.path = os.fspath(path)
        self.message = message
        self.cause = cause
        super().__init__(f"{self.path}: {message}")

    def __str__(self) -> str:
        return self.args[0]


class CheckpointError(IFCError):
    """A checkpoint cannot be read, is unsafe to read, or does not fit the architecture."""

    def __init__(self, path: str | os.PathLike | None, message: str) -> None:
        self.path = None if path is None else os.fspath(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


class WeightsError(IFCError):
    """Pretrained weights cannot be found, downloaded or verified."""


class VideoError(IFCError):
    """A video file or frame folder cannot be opened or decoded."""

    def __init__(self, path: str | os.PathLike | None, message: str) -> None:
        self.path = None if path is None else os.fspath(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


class DatasetError(IFCError):
    """A dataset folder or annotation file is missing or malformed."""


class EvaluationError(IFCError):
    """Ground truth or results cannot be evaluated (e.g. a result names an unknown video)."""
