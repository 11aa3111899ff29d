"""Post-training static int8 quantization of both graphs for the CPU.

ONNX graphs go through onnxruntime's static quantization (QDQ, per-channel int8 weights, uint8 activations:
the u8s8 kernels of x86 CPUs with VNNI), OpenVINO graphs through NNCF (mixed preset: symmetric int8 weights,
asymmetric activations). Only the convolutions and what fuses with them are quantized (see `ONNX_OP_TYPES`).
Both are calibrated on frames from the video domain (`ifc_sdk.export.calibration`); the graph files are
replaced in place.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ifc_sdk.export.calibration import CalibrationSet, calibration_set
from ifc_sdk.export.extras import import_optional
from ifc_sdk.export.graphs import FRAME_INPUT, STATE_NAMES
from ifc_sdk.modeling.ifc import IFC

# The convolutions are quantized (backbone, input projection, lateral adapters, mask head): they hold the
# compute. Attention, linear layers and normalisations stay in fp32: quantized, they move the class scores (on
# the demo model up to 0.6 in probability, against 0.03 this way) and they are a small part of the time.
ONNX_OP_TYPES = ("Conv",)
OPENVINO_FP32_TYPES = ("MatMul", "ScaledDotProductAttention", "MVN", "GroupNormalization")
ONNX_METHOD = (
    "onnxruntime static quantization (QDQ) of the convolutions: per-channel int8 weights, uint8 activations"
)
OPENVINO_METHOD = (
    "NNCF post-training quantization (mixed preset); attention, linear layers, normalisations fp32"
)


def _feeds(cal: CalibrationSet) -> dict[str, list[dict]]:
    return {
        "frame": [{FRAME_INPUT: x.numpy()} for x in cal.frame_inputs],
        "window": [{k: v.numpy() for k, v in zip(STATE_NAMES, w)} for w in cal.window_inputs],
    }


def quantize_onnx(path: Path, feeds: list[dict]) -> None:
    """Replace ONNX graph ``path`` by its int8 QDQ version calibrated on ``feeds`` (input name -> array)."""
    q = import_optional("onnxruntime.quantization", "int8 quantization of ONNX graphs")

    class Reader(q.CalibrationDataReader):
        """The feeds, served in ranges: onnxruntime reduces each range to min/max before the next."""

        def __init__(self) -> None:
            self.set_range(0, len(feeds))

        def __len__(self) -> int:
            return len(feeds)

        def set_range(self, start_index: int, end_index: int) -> None:
            self._items = iter(feeds[start_index:end_index])

        def get_next(self) -> dict | None:
            return next(self._items, None)

    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        q.quant_pre_process(str(path), str(prepared), skip_symbolic_shape=True)
        q.quantize_static(
            str(prepared),
            str(path),
            Reader(),
            quant_format=q.QuantFormat.QDQ,
            op_types_to_quantize=list(ONNX_OP_TYPES),
            per_channel=True,
            activation_type=q.QuantType.QUInt8,
            weight_type=q.QuantType.QInt8,
            calibrate_method=q.CalibrationMethod.MinMax,
            # One batch at a time, reduced to ranges at once: a 360p R50 batch has GBs of intermediates.
            extra_options={"CalibStridedMinMax": 1},
        )


@contextlib.contextmanager
def _quiet_nncf() -> Iterator[None]:
    """NNCF logs a line for every operation it leaves in fp32 (hundreds, by design here); warnings stay."""
    log = logging.getLogger("nncf")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


def quantize_openvino(path: Path, inputs: list) -> None:
    """Replace OpenVINO IR ``path`` by its int8 version (NNCF) calibrated on ``inputs`` (one list of arrays
    per inference)."""
    ov = import_optional("openvino", "int8 quantization of OpenVINO graphs")
    nncf = import_optional("nncf", "int8 quantization of OpenVINO graphs")
    from ifc_sdk.export.openvino import save

    model = ov.Core().read_model(str(path))
    with _quiet_nncf():
        quantized = nncf.quantize(
            model,
            nncf.Dataset(inputs),
            preset=nncf.QuantizationPreset.MIXED,
            subset_size=len(inputs),
            # validate=False: a graph need not hold every type (the window graph has no attention op, ...).
            ignored_scope=nncf.IgnoredScope(types=list(OPENVINO_FP32_TYPES), validate=False),
        )
    save(quantized, path)


def quantize(
    fmt: str,
    folder: Path,
    files: dict[str, str],
    model: IFC,
    calib: str | os.PathLike,
    *,
    size: int,
    window: int,
) -> dict:
    """Quantize the graphs ``files`` (in ``folder``, format ``fmt``) of ``model`` on calibration frames of
    ``calib``; returns the manifest's ``quantization`` entry."""
    cal = calibration_set(model, calib, size=size, window=window)
    feeds = _feeds(cal)
    if fmt == "onnx":
        for name in ("frame", "window"):
            quantize_onnx(folder / files[name], feeds[name])
        method = ONNX_METHOD
    else:
        for name in ("frame", "window"):
            inputs = [[f[k] for k in f] for f in feeds[name]]
            quantize_openvino(folder / files[name], inputs)
        method = OPENVINO_METHOD
    return {"method": method, "calibration": cal.info}
