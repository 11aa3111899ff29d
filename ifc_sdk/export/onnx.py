"""ONNX: writing the two graphs (``torch.onnx.export``, dynamo exporter) and running them in onnxruntime."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ifc_sdk.errors import ConfigError
from ifc_sdk.export.extras import import_optional, quiet_logger
from ifc_sdk.export.graphs import FRAME_INPUT, STATE_NAMES, WINDOW_OUTPUTS, ExportGraphs

FILES = {"frame": "frame.onnx", "window": "window.onnx"}
METADATA_KEY = "ifc_sdk"
# Execution providers tried in this order when present (onnxruntime-gpu builds have the first two).
PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def write_graphs(graphs: ExportGraphs, folder: Path) -> dict[str, str]:
    """Write ``frame.onnx`` and ``window.onnx`` into ``folder``; returns ``{"frame": file, "window": file}``.

    Call inside `ifc_sdk.export.graphs.traceable_kernels`."""
    import_optional("onnxscript", "ONNX export")
    import_optional("onnx", "ONNX export")
    specs = {
        "frame": (graphs.frame, graphs.frame_example, graphs.frame_dynamic, [FRAME_INPUT], list(STATE_NAMES)),
        "window": (
            graphs.window,
            graphs.window_example,
            graphs.window_dynamic,
            list(STATE_NAMES),
            list(WINDOW_OUTPUTS),
        ),
    }
    with quiet_logger("onnxscript", logging.ERROR):
        for name, (module, example, dynamic, inputs, outputs) in specs.items():
            program = torch.onnx.export(
                module,
                example,
                dynamo=True,
                input_names=inputs,
                output_names=outputs,
                dynamic_shapes=dynamic,
                optimize=True,
                verbose=False,
            )
            program.save(folder / FILES[name])
    return dict(FILES)


def stamp_metadata(path: Path, metadata: str) -> None:
    """Set the model's ``metadata_props[ifc_sdk]`` to ``metadata`` (the export manifest's JSON) in place."""
    onnx = import_optional("onnx", "ONNX export")
    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=METADATA_KEY, value=metadata)
    onnx.save(model, str(path))


def read_metadata(path: Path) -> str | None:
    """``metadata_props[ifc_sdk]`` of an ONNX file (None when absent), read without loading the weights."""
    onnx = import_optional("onnx", "reading ONNX metadata")
    model = onnx.load(str(path), load_external_data=False)
    return next((p.value for p in model.metadata_props if p.key == METADATA_KEY), None)


class OnnxGraph:
    """One ONNX graph in an onnxruntime session: torch CPU tensors in, torch CPU tensors out.

    ``providers``: execution providers to use; default TensorRT/CUDA when this onnxruntime build has them and
    ``device`` is CUDA, else the CPU. ``num_threads``: intra-op threads (default: onnxruntime's).
    """

    def __init__(
        self,
        path: Path,
        *,
        device: torch.device,
        providers: Sequence[str] | None = None,
        num_threads: int | None = None,
    ) -> None:
        ort = import_optional("onnxruntime", "running an ONNX export")
        available = ort.get_available_providers()
        if providers is None:
            if device.type == "cuda" and "CUDAExecutionProvider" not in available:
                raise ConfigError(
                    f"device {device} asks for onnxruntime's CUDA provider, which this onnxruntime lacks "
                    f"(available: {', '.join(available)}); install onnxruntime-gpu or use the CPU"
                )
            wanted = PROVIDERS if device.type == "cuda" else ("CPUExecutionProvider",)
            providers = [p for p in wanted if p in available]
        missing = [p for p in providers if p not in available]
        if missing:
            raise ConfigError(
                f"onnxruntime has no {', '.join(missing)} here; available: {', '.join(available)}"
            )
        options = ort.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = num_threads
            options.inter_op_num_threads = 1
        # Idle worker threads sleep instead of spinning: between two calls the video pipeline decodes and
        # post-processes masks on the same cores (2 threads, R50 T=36 360p: 5.9 -> 5.75 s per video in int8).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=list(providers))
        except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
            raise ConfigError(f"{path}: onnxruntime cannot load this graph: {exc}") from exc
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.providers = self.session.get_providers()

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        feeds = {name: np.ascontiguousarray(x.numpy()) for name, x in zip(self.input_names, inputs)}
        return [torch.from_numpy(out) for out in self.session.run(None, feeds)]
