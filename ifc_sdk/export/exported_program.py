"""``torch.export``: the two graphs as ``.pt2`` ExportedPrograms, run with ``torch.export.load``."""

from __future__ import annotations

from pathlib import Path

import torch

from ifc_sdk.errors import ConfigError
from ifc_sdk.export.graphs import ExportGraphs

FILES = {"frame": "frame.pt2", "window": "window.pt2"}


def write_graphs(graphs: ExportGraphs, folder: Path) -> dict[str, str]:
    """Export and save both programs in ``folder``; returns ``{"frame": file, "window": file}``.

    Call inside `ifc_sdk.export.graphs.traceable_kernels`."""
    specs = {
        "frame": (graphs.frame, graphs.frame_example, graphs.frame_dynamic),
        "window": (graphs.window, graphs.window_example, graphs.window_dynamic),
    }
    for name, (module, example, dynamic) in specs.items():
        program = torch.export.export(module, example, dynamic_shapes=dynamic)
        torch.export.save(program, folder / FILES[name])
    return dict(FILES)


class ExportedProgramGraph:
    """One saved ExportedProgram on the CPU: torch tensors in, torch tensors out.

    The window program is traced with T = 2 frames, and the tracer records T >= 2 among its input guards,
    although the graph computes any T (it only chose a copy-free reshape for T != 1); the guards are therefore
    not checked (``check_guards=False``), and the tests run T = 1 against eager.
    """

    def __init__(self, path: Path, *, device: torch.device, num_threads: int | None = None) -> None:
        del num_threads  # torch's own thread setting applies
        if device.type != "cpu":
            raise ConfigError(f"ExportedProgram exports are traced on the CPU and run there, not on {device}")
        try:
            program = torch.export.load(path)
        except (RuntimeError, ValueError, OSError) as exc:
            raise ConfigError(f"{path}: cannot load this ExportedProgram: {exc}") from exc
        self.module = program.module(check_guards=False)

    @torch.inference_mode()
    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        return list(self.module(*inputs))
