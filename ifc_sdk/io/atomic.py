"""Safe writes, as `ifc_sdk.atomic` (which lives below `ifc_sdk.results`, whose results are saved atomically
too); this name keeps the I/O layer's imports working."""

from ifc_sdk.atomic import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    current_umask,
    describe_os_error,
    ensure_dir,
    ensure_file_target,
    normal_mode,
    output_error,
    staging_dir,
)

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "current_umask",
    "describe_os_error",
    "ensure_dir",
    "ensure_file_target",
    "normal_mode",
    "output_error",
    "staging_dir",
]
