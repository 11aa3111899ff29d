"""Post-training static int8 quantization of the frame graph for the CPU.

ONNX graphs go through onnxruntime's static quantization (QDQ, per-channel int8 weights, uint8 activations:
the u8s8 kernels of x86 CPUs with VNNI), OpenVINO graphs through NNCF (mixed preset: symmetric int8 weights,
asymmetric activations). What is quantized: the frame graph's convolutions (backbone and input projection,
where the compute is) and what fuses with them. What stays fp32, because quantized it moves the outputs more
than it saves time:

- attention, linear layers and normalisations (on the demo model they moved class probabilities by up to 0.6,
  against 0.03 without them);
- the mask head's convolutions: the lateral adapters that end the frame graph (its ``fpn4``/``fpn3``
  outputs) and the whole window graph (only mask-head convolutions besides the above). Mask logits are a dot
  product with these features, so their rounding moves mask borders: on the demo model's check clip, tracks'
  mask IoU against fp32 went from 0.85-0.86 to 0.96-0.97 for the two least certain tracks when they stayed
  fp32.

The frame graph is calibrated (MinMax ranges) on frames from the video domain (`ifc_sdk.export.calibration`);
its file is replaced in place.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from ifc_sdk.export.calibration import calibration_set
from ifc_sdk.export.extras import import_optional, quiet_logger
from ifc_sdk.export.graphs import FRAME_INPUT
from ifc_sdk.modeling.ifc import IFC

ONNX_OP_TYPES = ("Conv",)
OPENVINO_FP32_TYPES = ("MatMul", "ScaledDotProductAttention", "MVN", "GroupNormalization")
MASK_FEATURES = ("fpn4", "fpn3")  # frame graph outputs made by the mask head's lateral adapters (kept fp32)
ONNX_METHOD = (
    "onnxruntime static quantization (QDQ, MinMax) of the frame graph's convolutions but the mask head's: "
    "per-channel int8 weights, uint8 activations; window graph fp32"
)
OPENVINO_METHOD = (
    "NNCF post-training quantization (mixed preset) of the frame graph; attention, linear layers, "
    "normalisations and the mask head's convolutions fp32; window graph fp32"
)


def _onnx_producers(model, outputs: tuple[str, ...]) -> list[str]:
    """Names of the nodes of ONNX ``model`` that write graph outputs ``outputs``."""
    return [node.name for node in model.graph.node if set(node.output) & set(outputs)]


def quantize_onnx(path: Path, feeds: list[dict], *, keep_fp32_outputs: tuple[str, ...] = ()) -> None:
    """Replace ONNX graph ``path`` by its int8 QDQ version calibrated on ``feeds`` (input name -> array); the
    nodes writing graph outputs ``keep_fp32_outputs`` stay fp32."""
    onnx = import_optional("onnx", "int8 quantization of ONNX graphs")
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
        excluded = _onnx_producers(onnx.load(str(prepared), load_external_data=False), keep_fp32_outputs)
        q.quantize_static(
            str(prepared),
            str(path),
            Reader(),
            quant_format=q.QuantFormat.QDQ,
            op_types_to_quantize=list(ONNX_OP_TYPES),
            nodes_to_exclude=excluded,
            per_channel=True,
            activation_type=q.QuantType.QUInt8,
            weight_type=q.QuantType.QInt8,
            calibrate_method=q.CalibrationMethod.MinMax,
            # One batch at a time, reduced to ranges at once: a 360p R50 batch has GBs of intermediates.
            extra_options={"CalibStridedMinMax": 1},
        )


def _openvino_producers(model, outputs: tuple[str, ...]) -> list[str]:
    """Friendly names of the convolutions of OpenVINO ``model`` that write outputs ``outputs`` (through the
    bias ``Add`` the converter splits off)."""
    names = []
    for output in model.outputs:
        if not set(output.get_names()) & set(outputs):
            continue
        node = output.get_node().input_value(0).get_node()  # the Result's producer
        while node.get_type_name() == "Add":
            inputs = [node.input_value(i).get_node() for i in range(node.get_input_size())]
            node = next((n for n in inputs if n.get_type_name() != "Constant"), inputs[0])
        names.append(node.get_friendly_name())
    return names


def quantize_openvino(path: Path, inputs: list, *, keep_fp32_outputs: tuple[str, ...] = ()) -> None:
    """Replace OpenVINO IR ``path`` by its int8 version (NNCF) calibrated on ``inputs`` (one list of arrays
    per inference); the convolutions writing outputs ``keep_fp32_outputs`` stay fp32."""
    ov = import_optional("openvino", "int8 quantization of OpenVINO graphs")
    nncf = import_optional("nncf", "int8 quantization of OpenVINO graphs")
    from ifc_sdk.export.openvino import save

    model = ov.Core().read_model(str(path))
    ignored = nncf.IgnoredScope(
        names=_openvino_producers(model, keep_fp32_outputs),
        types=list(OPENVINO_FP32_TYPES),
        validate=False,  # a graph need not hold every type
    )
    with quiet_logger("nncf", logging.WARNING):
        quantized = nncf.quantize(
            model,
            nncf.Dataset(inputs),
            preset=nncf.QuantizationPreset.MIXED,
            subset_size=len(inputs),
            ignored_scope=ignored,
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
    """Quantize the frame graph of ``files`` (in ``folder``, format ``fmt``) of ``model`` on calibration frames
    of ``calib``; returns the manifest's ``quantization`` entry."""
    cal = calibration_set(model, calib, size=size, window=window)
    path = folder / files["frame"]
    if fmt == "onnx":
        quantize_onnx(
            path, [{FRAME_INPUT: x.numpy()} for x in cal.frame_inputs], keep_fp32_outputs=MASK_FEATURES
        )
        method = ONNX_METHOD
    else:
        quantize_openvino(path, [[x.numpy()] for x in cal.frame_inputs], keep_fp32_outputs=MASK_FEATURES)
        method = OPENVINO_METHOD
    return {"method": method, "calibration": cal.info, "quantized_graphs": ["frame"]}
