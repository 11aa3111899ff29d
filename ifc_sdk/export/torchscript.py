"""TorchScript: the two graphs traced with ``torch.jit.trace`` and run with ``torch.jit.load``.

Tracing records the shape arithmetic (sizes read from tensors), so the traced graphs take any frame count,
window length and frame size; TorchScript is deprecated in recent PyTorch (`exported_program` is its
successor) but still the format C++ deployments and older runtimes load.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ifc_sdk.errors import ConfigError
from ifc_sdk.export.graphs import ExportGraphs

FILES = {"frame": "frame.ts", "window": "window.ts"}


def write_graphs(graphs: ExportGraphs, folder: Path) -> dict[str, str]:
    """Trace and save both graphs in ``folder``; returns ``{"frame": file, "window": file}``.

    Call inside `ifc_sdk.export.graphs.traceable_kernels`."""
    specs = {"frame": (graphs.frame, graphs.frame_example), "window": (graphs.window, graphs.window_example)}
    with warnings.catch_warnings(), torch.no_grad():
        # Deprecation notices, and the mask head's `B == 1` test (one clip per window graph by design).
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        for name, (module, example) in specs.items():
            traced = torch.jit.trace(module, example, check_trace=False)
            traced.save(str(folder / FILES[name]))
    return dict(FILES)


class TorchScriptGraph:
    """One saved TorchScript graph on the CPU: torch tensors in, torch tensors out."""

    def __init__(self, path: Path, *, device: torch.device, num_threads: int | None = None) -> None:
        del num_threads  # torch's own thread setting applies
        if device.type != "cpu":
            raise ConfigError(f"TorchScript exports are traced on the CPU and run there, not on {device}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            try:
                self.module = torch.jit.load(str(path), map_location="cpu").eval()
            except RuntimeError as exc:
                raise ConfigError(f"{path}: cannot load this TorchScript graph: {exc}") from exc

    @torch.inference_mode()
    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        return list(self.module(*inputs))
