"""Export IFC to ONNX, OpenVINO, TorchScript or ``torch.export``, and run the exports behind the clip-model
protocol.

>>> import ifc_sdk
>>> ifc_sdk.export(ifc_sdk.load_model("r50"), format="onnx", out="r50_onnx")   # frame.onnx, window.onnx
>>> runtime = ifc_sdk.load_model("r50_onnx")                                    # a RuntimeClipModel
>>> result = ifc_sdk.segment_video("clip.mp4", runtime)

The package itself is callable (``ifc_sdk.export(model, format=..., out=...)`` is `export`), so the function
and its submodules (``ifc_sdk.export.onnx`` ...) share one name. Runtimes are optional extras imported lazily:
``pip install "ifc-sdk[onnx]"`` (onnx, onnxscript, onnxruntime), ``"ifc-sdk[openvino]"`` (openvino, nncf).
"""

from __future__ import annotations

import sys
import types

from ifc_sdk.export.exporter import export
from ifc_sdk.export.metadata import FORMATS, ExportInfo, is_export_dir
from ifc_sdk.export.runtime import RuntimeClipModel, load_exported

__all__ = ["FORMATS", "ExportInfo", "RuntimeClipModel", "export", "is_export_dir", "load_exported"]


class _CallableModule(types.ModuleType):
    """This package, callable as `export`."""

    def __call__(self, *args, **kwargs) -> ExportInfo:
        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
