"""Post-training static int8 quantization for the CPU.

ONNX graphs go through onnxruntime's static quantization (QDQ, per-channel int8 weights, uint8 activations:
the u8s8 kernels of x86 CPUs with VNNI), OpenVINO graphs through NNCF (mixed preset: symmetric int8 weights,
asymmetric activations). What is quantized, the convolutions (where the compute is) and what fuses with them:

- in the frame graph, the backbone's and the input projection's;
- in the window graph, the mask head's (``lay1``-``lay3`` and the pointwise half of ``out_lay``), which at
  T=36 are most of the window's time, and nothing else: left to itself NNCF also quantizes the window graph's
  additions and resizes (the transformer's residual stream, the mask head's top-down path). On the demo model
  with only the window graph in int8, the real clips' matched-track mask IoU against fp32 was 0.89 / 0.94 /
  0.82 (bigbuckbunny / bikes / carphone) with them, 0.92 / 0.97 / 0.91 without.

What stays fp32, because quantized it moves the outputs more than it saves time:

- attention, linear layers and normalisations (on the demo model they moved class probabilities by up to 0.6,
  against 0.03 without them);
- the mask head's lateral adapters that end the frame graph (its ``fpn4``/``fpn3`` outputs), which are added
  to the mask features as they are: on the demo model's check clip, tracks' mask IoU against fp32 went from
  0.85-0.86 to 0.96-0.97 for the two least certain tracks when they stayed fp32.

Each graph is calibrated (MinMax ranges) on windows of frames from the video domain
(`ifc_sdk.export.calibration`; the window graph on the fp32 model's frame states of the same windows); its file
is replaced in place.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from ifc_sdk.export.calibration import calibration_set
from ifc_sdk.export.extras import import_optional, quiet_logger
from ifc_sdk.export.graphs import FRAME_INPUT, STATE_NAMES
from ifc_sdk.modeling.ifc import IFC

ONNX_OP_TYPES = ("Conv",)
OPENVINO_FP32_TYPES = ("MatMul", "ScaledDotProductAttention", "MVN", "GroupNormalization")
MASK_FEATURES = ("fpn4", "fpn3")  # frame graph outputs made by the mask head's lateral adapters (kept fp32)
WINDOW_CONVS = ("lay1", "lay2", "lay3", "out_lay.pointwise")  # the window graph's quantized convolutions
ONNX_METHOD = (
    "onnxruntime static quantization (QDQ, MinMax), per-channel int8 weights, uint8 activations: the frame "
    "graph's convolutions but the mask head's lateral adapters; the window graph's mask head convolutions"
)
OPENVINO_METHOD = (
    "NNCF post-training quantization (mixed preset): the frame graph but attention, linear layers, "
    "normalisations and the mask head's lateral adapters; the window graph's mask head convolutions only"
)


def _onnx_producers(model, outputs: tuple[str, ...]) -> list[str]:
    """Names of the nodes of ONNX ``model`` that write graph outputs ``outputs``."""
    return [node.name for node in model.graph.node if set(node.output) & set(outputs)]


def _onnx_convs(model, weights: tuple[str, ...]) -> list[str]:
    """Names of the convolutions of ONNX ``model`` whose weight is one of the parameters ``weights``."""
    return [node.name for node in model.graph.node if node.op_type == "Conv" and node.input[1] in weights]


def quantize_onnx(
    path: Path,
    feeds: list[dict],
    *,
    keep_fp32_outputs: tuple[str, ...] = (),
    only_weights: tuple[str, ...] | None = None,
) -> None:
    """Replace ONNX graph ``path`` by its int8 QDQ version calibrated on ``feeds`` (input name -> array); the
    nodes writing graph outputs ``keep_fp32_outputs`` stay fp32; ``only_weights``: quantize only the
    convolutions of these parameters (default: every one)."""
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
        graph = onnx.load(str(prepared), load_external_data=False)
        excluded = _onnx_producers(graph, keep_fp32_outputs)
        included = None if only_weights is None else _onnx_convs(graph, only_weights)
        q.quantize_static(
            str(prepared),
            str(path),
            Reader(),
            quant_format=q.QuantFormat.QDQ,
            op_types_to_quantize=list(ONNX_OP_TYPES),
            nodes_to_exclude=excluded,
            nodes_to_quantize=included,
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


def _openvino_all_but_convs(model, weights: tuple[str, ...]) -> list[str]:
    """Friendly names of the operations of OpenVINO ``model`` but the convolutions whose weight is one of the
    parameters ``weights`` (the converter names a weight constant after its parameter, dots as
    underscores)."""
    wanted = {w.replace(".", "_") + ":0" for w in weights}
    return [
        op.get_friendly_name()
        for op in model.get_ordered_ops()
        if op.get_type_name() not in ("Convolution", "GroupConvolution")
        or not wanted & set(op.input_value(1).get_node().output(0).get_names())
    ]


def quantize_openvino(
    path: Path,
    inputs: list,
    *,
    keep_fp32_outputs: tuple[str, ...] = (),
    only_weights: tuple[str, ...] | None = None,
) -> None:
    """Replace OpenVINO IR ``path`` by its int8 version (NNCF) calibrated on ``inputs`` (one list of arrays
    per inference); the convolutions writing outputs ``keep_fp32_outputs`` stay fp32; ``only_weights``:
    quantize only the convolutions of these parameters and nothing else (default: every operation NNCF
    quantizes, but attention, linear layers and normalisations)."""
    ov = import_optional("openvino", "int8 quantization of OpenVINO graphs")
    nncf = import_optional("nncf", "int8 quantization of OpenVINO graphs")
    from ifc_sdk.export.openvino import save

    model = ov.Core().read_model(str(path))
    names = _openvino_producers(model, keep_fp32_outputs)
    if only_weights is not None:
        names += _openvino_all_but_convs(model, only_weights)
    ignored = nncf.IgnoredScope(
        names=names,
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
    """Quantize both graphs of ``files`` (in ``folder``, format ``fmt``) of ``model`` on calibration windows
    of ``calib``; returns the manifest's ``quantization`` entry."""
    cal = calibration_set(model, calib, size=size, window=window, window_states=True)
    frame, win = folder / files["frame"], folder / files["window"]
    weights = tuple(f"model.mask_head.{name}.weight" for name in WINDOW_CONVS)
    if fmt == "onnx":
        frame_feeds = [{FRAME_INPUT: x.numpy()} for x in cal.frame_inputs]
        quantize_onnx(frame, frame_feeds, keep_fp32_outputs=MASK_FEATURES)
        window_feeds = [dict(zip(STATE_NAMES, (t.numpy() for t in w))) for w in cal.window_inputs]
        quantize_onnx(win, window_feeds, only_weights=weights)
        method = ONNX_METHOD
    else:
        quantize_openvino(frame, [[x.numpy()] for x in cal.frame_inputs], keep_fp32_outputs=MASK_FEATURES)
        quantize_openvino(win, [[t.numpy() for t in w] for w in cal.window_inputs], only_weights=weights)
        method = OPENVINO_METHOD
    return {
        "method": method,
        "calibration": cal.info,
        "quantized_graphs": ["frame", "window"],
        "window_convolutions": [f"mask_head.{name}" for name in WINDOW_CONVS],
    }
