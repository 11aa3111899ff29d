"""Lazy imports of the optional runtimes, with an error that names the pip extra to install; their logs."""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Iterator
from types import ModuleType

from ifc_sdk.errors import ConfigError

# Top-level module -> the extra of ifc-sdk that installs it.
EXTRAS = {
    "onnx": "onnx",
    "onnxscript": "onnx",
    "onnxruntime": "onnx",
    "openvino": "openvino",
    "nncf": "openvino",
}


def import_optional(name: str, purpose: str) -> ModuleType:
    """Import module ``name`` (e.g. "onnxruntime" or "onnxruntime.quantization") for ``purpose``; a missing
    package is a `ConfigError` saying which ``pip install "ifc-sdk[EXTRA]"`` provides it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        top = name.split(".")[0]
        extra = EXTRAS.get(top, top)
        raise ConfigError(
            f"{purpose} needs the optional package {top!r}, which is not installed: "
            f'pip install "ifc-sdk[{extra}]" ({exc})'
        ) from exc


@contextlib.contextmanager
def quiet_logger(name: str, level: int) -> Iterator[None]:
    """Raise logger ``name`` to ``level`` while the block runs (optional libraries log a line per operation
    they leave alone: onnxscript per unfolded constant, NNCF per operation kept in fp32)."""
    log = logging.getLogger(name)
    previous = log.level
    log.setLevel(level)
    try:
        yield
    finally:
        log.setLevel(previous)
