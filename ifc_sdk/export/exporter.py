"""`export`: write an IFC model's two graphs in one format into a folder, check them, never lose user files.

Everything is written into a staging folder beside the output folder first; only when the graphs are written,
quantized, stamped with their metadata and checked are *our* files moved into the output folder (the manifest
last), so an interrupted export leaves the folder as it was. Files of the user's already in the folder are never
touched; an existing export there is replaced only with ``overwrite=True`` (and then exactly its files).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import torch

from ifc_sdk.errors import ConfigError, OutputError
from ifc_sdk.export.extras import import_optional
from ifc_sdk.export.graphs import build_graphs, traceable_kernels
from ifc_sdk.export.metadata import FORMATS, MANIFEST, RECOMMENDED_ATTRIBUTE, ExportInfo, is_export_dir
from ifc_sdk.io.atomic import ensure_dir, output_error, staging_dir
from ifc_sdk.modeling.ifc import IFC

INT8_FORMATS = ("onnx", "openvino")
# Optional modules each step needs per format, imported before any work starts (a missing extra fails fast).
NEEDS = {
    "onnx": {
        "export": ("onnx", "onnxscript"),
        "int8": ("onnxruntime.quantization",),
        "check": ("onnxruntime",),
    },
    "openvino": {"export": ("openvino",), "int8": ("nncf",), "check": ("openvino",)},
}


def _writer(fmt: str):
    if fmt == "onnx":
        from ifc_sdk.export import onnx as backend
    elif fmt == "openvino":
        from ifc_sdk.export import openvino as backend
    elif fmt == "torchscript":
        from ifc_sdk.export import torchscript as backend
    else:
        from ifc_sdk.export import exported_program as backend
    return backend


def _versions(fmt: str) -> dict[str, str]:
    import importlib.metadata as md

    names = {"onnx": ("onnx", "onnxscript"), "openvino": ("openvino",)}.get(fmt, ())
    out = {"torch": torch.__version__}
    for name in ("ifc-sdk", *names):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def _all_files(graphs: dict[str, str], fmt: str) -> list[str]:
    files = list(graphs.values())
    if fmt == "openvino":
        from ifc_sdk.export.openvino import weights_file

        files += [weights_file(f) for f in graphs.values()]
    return [*files, MANIFEST]


def _check_target(out: Path, files: list[str], overwrite: bool) -> list[str]:
    """Refuse to clobber: returns the previous export's files to remove (with ``overwrite``)."""
    if out.exists() and not out.is_dir():
        raise OutputError(out, "the export folder is an existing file, not a folder")
    old: list[str] = []
    if is_export_dir(out):
        if not overwrite:
            raise OutputError(
                out, "already holds an exported model; pass overwrite=True (--overwrite) to replace it"
            )
        try:
            old = ExportInfo.read(out).files
        except ConfigError:  # an unreadable manifest: replace just the files this export writes
            old = [MANIFEST]
    clash = [f for f in files if (out / f).exists() and f not in old]
    if clash:
        raise OutputError(
            out / clash[0],
            "exists and is not part of an earlier export; move it away or choose another folder",
        )
    return old


def _install(stage: Path, out: Path, files: list[str], old: list[str]) -> None:
    """Move ``files`` from ``stage`` into ``out``: the old manifest goes first (the folder is never a complete
    export of mixed files), the new manifest last; files of the old export the new one lacks are removed."""
    ensure_dir(out, "export folder")
    try:
        if MANIFEST in old:
            (out / MANIFEST).unlink()
        for name in files:
            if name != MANIFEST:
                os.replace(stage / name, out / name)
        for name in old:
            if name not in files and Path(name).name == name:  # only plain names inside the folder
                (out / name).unlink(missing_ok=True)
        os.replace(stage / MANIFEST, out / MANIFEST)
    except OSError as exc:
        raise output_error(out, exc, "cannot move the exported files into place") from exc


def export(
    model: IFC,
    format: str = "onnx",
    out: str | os.PathLike = "ifc_export",
    *,
    int8: bool = False,
    calib: str | os.PathLike | None = None,
    calib_size: int = 360,
    window: int = 5,
    overwrite: bool = False,
    check: bool = True,
) -> ExportInfo:
    """Export ``model`` as two graphs (per frame, per window; see `ifc_sdk.export.graphs`) into ``out``.

    Args:
        model: an `IFC` (e.g. from `ifc_sdk.load_model`); it is not modified.
        format: "onnx", "openvino", "torchscript" or "exported-program".
        out: the output folder (created if needed; other files in it are kept).
        int8: post-training static int8 quantization (onnx: onnxruntime's; openvino: NNCF), calibrated on
            frames of ``calib``.
        calib: a video file or a folder of frames from the domain the model will see (required with ``int8``).
        calib_size: short side the calibration frames are resized to (the inference ``size``).
        window: frames per calibration window (the inference ``window``).
        overwrite: replace an export already in ``out``.
        check: run the exported graphs on the built-in check clip and record the largest differences from
            eager (``info.check``; `ifc_sdk.export.check.format_check` prints them).

    Returns:
        The manifest written to ``out/ifc_export.json``. Load the folder with ``ifc_sdk.load_model(out)``.
    """
    if not isinstance(model, IFC):
        raise ConfigError(f"export needs an IFC model (see ifc_sdk.load_model), got {type(model).__name__}")
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if int8 and format not in INT8_FORMATS:
        raise ConfigError(f"int8 export is available for {' and '.join(INT8_FORMATS)}, not {format}")
    if int8 and calib is None:
        raise ConfigError(
            "int8 export needs calibration frames: a video or frame folder from the model's domain"
        )
    if not int8 and calib is not None:
        raise ConfigError("calibration frames are only used by an int8 export (int8=True / --int8)")
    steps = ("export", "int8" if int8 else None, "check" if check else None)
    for step in filter(None, steps):
        for module in NEEDS.get(format, {}).get(step, ()):
            import_optional(module, f"{'int8 ' if step == 'int8' else ''}{format} export")
    out = Path(out)
    backend = _writer(format)
    planned = _all_files(dict(backend.FILES), format)
    old = _check_target(out, planned, overwrite)

    graphs = build_graphs(model)
    eager = graphs.frame.model  # the CPU fp32 copy the graphs were built from
    with staging_dir(out) as stage:
        with traceable_kernels():
            files = backend.write_graphs(graphs, stage)
        quantization = None
        if int8:
            from ifc_sdk.export.quantize import quantize

            quantization = quantize(format, stage, files, eager, calib, size=calib_size, window=window)
        info = ExportInfo(
            format=format,
            precision="int8" if int8 else "fp32",
            graphs=files,
            files=_all_files(files, format),
            config=eager.config,
            quantization=quantization,
            versions=_versions(format),
            inference=getattr(model, RECOMMENDED_ATTRIBUTE, None),
        )
        if hasattr(backend, "stamp_metadata"):
            for name in files.values():
                backend.stamp_metadata(stage / name, info.to_json())
        if check:
            from ifc_sdk.export.check import compare_with_eager
            from ifc_sdk.export.runtime import load_exported

            (stage / MANIFEST).write_text(info.to_json(), encoding="utf-8")
            info = replace(info, check=compare_with_eager(eager, load_exported(stage)))
        (stage / MANIFEST).write_text(info.to_json(), encoding="utf-8")
        _install(stage, out, info.files, old)
    return info
