"""OpenVINO: converting the two graphs (from `torch.export` programs) to IR and running them on the CPU."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ifc_sdk.errors import ConfigError
from ifc_sdk.export.extras import import_optional
from ifc_sdk.export.graphs import STATE_NAMES, WINDOW_OUTPUTS, ExportGraphs

FILES = {"frame": "frame.xml", "window": "window.xml"}
METADATA_KEY = "ifc_sdk"


def weights_file(xml: str) -> str:
    """The ``.bin`` OpenVINO writes beside an IR ``.xml``."""
    return str(Path(xml).with_suffix(".bin"))


def _name_outputs(model, names: tuple[str, ...]) -> None:
    for output, name in zip(model.outputs, names):
        output.get_tensor().set_names({name})


def write_graphs(graphs: ExportGraphs, folder: Path) -> dict[str, str]:
    """Convert both graphs to OpenVINO IR (fp32 weights) in ``folder``; returns ``{"frame": xml, "window":
    xml}`` (each with its ``.bin``). Call inside `ifc_sdk.export.graphs.traceable_kernels`."""
    ov = import_optional("openvino", "OpenVINO export")
    specs = {
        "frame": (graphs.frame, graphs.frame_example, graphs.frame_dynamic, STATE_NAMES),
        "window": (graphs.window, graphs.window_example, graphs.window_dynamic, WINDOW_OUTPUTS),
    }
    for name, (module, example, dynamic, outputs) in specs.items():
        program = torch.export.export(module, example, dynamic_shapes=dynamic)
        model = ov.convert_model(program)
        _name_outputs(model, outputs)
        save(model, folder / FILES[name])
    return dict(FILES)


def save(model, path: Path) -> None:
    """Save an ``openvino.Model`` as IR at ``path`` with fp32 weights (OpenVINO's default halves them).

    Written beside the target and renamed into place: a model read from ``path`` maps its ``.bin`` into
    memory, and rewriting that file in place would pull the weights from under it (SIGBUS)."""
    ov = import_optional("openvino", "OpenVINO export")
    tmp = path.with_name(f".tmp-{path.name}")
    ov.save_model(model, str(tmp), compress_to_fp16=False)
    os.replace(weights_file(tmp), weights_file(path))
    os.replace(tmp, path)


def stamp_metadata(path: Path, metadata: str) -> None:
    """Store the export manifest's JSON in the IR's ``rt_info`` (key ``ifc_sdk``), in place."""
    ov = import_optional("openvino", "OpenVINO export")
    model = ov.Core().read_model(str(path))
    model.set_rt_info(metadata, METADATA_KEY)
    save(model, path)


def read_metadata(path: Path) -> str | None:
    """The ``rt_info[ifc_sdk]`` of an IR file, None when absent."""
    ov = import_optional("openvino", "reading OpenVINO metadata")
    model = ov.Core().read_model(str(path))
    return model.get_rt_info(METADATA_KEY).astype(str) if model.has_rt_info(METADATA_KEY) else None


class OpenVINOGraph:
    """One IR graph compiled for OpenVINO's CPU plugin: torch CPU tensors in, torch CPU tensors out.

    Runs in fp32 arithmetic (``INFERENCE_PRECISION_HINT=f32``; the plugin would otherwise pick bf16 on CPUs
    that have it) except for the int8 operations of a quantized graph; ``num_threads``: inference threads
    (default: OpenVINO's).
    """

    def __init__(self, path: Path, *, device: torch.device, num_threads: int | None = None) -> None:
        ov = import_optional("openvino", "running an OpenVINO export")
        if device.type != "cpu":
            raise ConfigError(f"OpenVINO exports run on the CPU here, not on {device}")
        config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if num_threads is not None:
            config["INFERENCE_NUM_THREADS"] = int(num_threads)
        try:
            compiled = ov.Core().compile_model(str(path), "CPU", config)
        except RuntimeError as exc:
            raise ConfigError(f"{path}: OpenVINO cannot compile this graph: {exc}") from exc
        self.request = compiled.create_infer_request()

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        # share_outputs=False: the request reuses its output buffers, and callers keep the results.
        outputs = self.request.infer(
            [np.ascontiguousarray(x.numpy()) for x in inputs], share_inputs=True, share_outputs=False
        )
        return [torch.from_numpy(out) for out in outputs.to_tuple()]
