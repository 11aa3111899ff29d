"""Exported graphs behind the clip-model protocol, so `VideoSegmenter` runs them like the eager model.

`RuntimeClipModel` implements what the segmenter asks of a model (`ifc_sdk.inference.clip_model.ClipModel`):
``frame_states`` normalises uint8 frames on the host and runs the frame graph, ``window_heads`` runs the
window graph. Resizing, batching, windowing, tracking, upsampling and RLE stay in the one `VideoSegmenter`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ifc_sdk.errors import ConfigError
from ifc_sdk.export.graphs import STATE_NAMES
from ifc_sdk.export.metadata import RECOMMENDED_ATTRIBUTE, ExportInfo
from ifc_sdk.modeling.config import IFCConfig

Graph = Callable[..., list[torch.Tensor]]


def open_graph(
    info: ExportInfo,
    path: Path,
    *,
    device: torch.device,
    num_threads: int | None = None,
    providers: Sequence[str] | None = None,
) -> Graph:
    """A callable running graph file ``path`` of an export in ``info.format`` (torch tensors in and out)."""
    if info.format == "onnx":
        from ifc_sdk.export.onnx import OnnxGraph

        return OnnxGraph(path, device=device, providers=providers, num_threads=num_threads)
    if providers is not None:
        raise ConfigError(f"execution providers are an onnxruntime setting; this export is {info.format}")
    if info.format == "openvino":
        from ifc_sdk.export.openvino import OpenVINOGraph

        return OpenVINOGraph(path, device=device, num_threads=num_threads)
    if info.format == "torchscript":
        from ifc_sdk.export.torchscript import TorchScriptGraph

        return TorchScriptGraph(path, device=device, num_threads=num_threads)
    from ifc_sdk.export.exported_program import ExportedProgramGraph

    return ExportedProgramGraph(path, device=device, num_threads=num_threads)


class RuntimeClipModel:
    """An exported IFC run by onnxruntime, OpenVINO, TorchScript or ``torch.export`` (a `ClipModel`).

    Args:
        info: the export's manifest.
        frame_graph, window_graph: callables running the two graphs (see `open_graph`).
        folder: where the export lives (for messages).

    Inputs live on the host (``device`` is the CPU: the runtimes take host buffers, and an onnxruntime GPU
    provider copies them itself); outputs are torch CPU tensors sharing the runtime's result buffers.
    """

    def __init__(self, info: ExportInfo, frame_graph: Graph, window_graph: Graph, folder: Path) -> None:
        self.info = info
        self.config: IFCConfig = info.config
        self.folder = folder
        self._frame_graph = frame_graph
        self._window_graph = window_graph
        self._mean = torch.tensor(self.config.pixel_mean).view(-1, 1, 1)
        self._std = torch.tensor(self.config.pixel_std).view(-1, 1, 1)

    def __repr__(self) -> str:
        return f"RuntimeClipModel({self.info.format}, {self.info.precision}, {str(self.folder)!r})"

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def prepare(self) -> None:
        """Nothing to do: the graphs were compiled when the model was loaded."""

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, 3, H, W)`` RGB -> float32 normalised in the weights' channel order (the same arithmetic
        as `IFC.normalize`, so the graphs see bit-identical inputs)."""
        if self.config.input_format == "BGR":
            images = images.flip(1)
        return ((images.float() - self._mean) / self._std).contiguous()

    def frame_states(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """uint8 ``(N, 3, H, W)`` RGB frames at network size -> tokens, bus, pos, fpn4, fpn3 (first dim N)."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ConfigError(f"frames must be uint8 (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        outputs = self._frame_graph(self.normalize(images.cpu()))
        return dict(zip(STATE_NAMES, outputs))

    def window_heads(
        self, states: dict[str, torch.Tensor], num_frames: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One window's stacked frame states (first dim T) -> class logits ``(Q, K+1)``, mask logits
        ``(Q, T, H/8, W/8)``."""
        if states["tokens"].shape[0] != num_frames:
            raise ConfigError(f"window of {num_frames} frames, but states of {states['tokens'].shape[0]}")
        logits, masks = self._window_graph(*(states[name].contiguous() for name in STATE_NAMES))
        return logits, masks


def load_exported(
    folder: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    num_threads: int | None = None,
    providers: Sequence[str] | None = None,
) -> RuntimeClipModel:
    """Load a folder written by `ifc_sdk.export` as a `RuntimeClipModel`.

    Args:
        folder: the export folder (it holds ``ifc_export.json``).
        device: None or "cpu"; "cuda" selects onnxruntime's TensorRT/CUDA providers where installed.
        num_threads: threads of the runtime (default: the runtime's own choice).
        providers: onnxruntime execution providers, in order of preference (ONNX exports only).
    """
    folder = Path(folder)
    info = ExportInfo.read(folder)
    device = torch.device("cpu" if device is None else device)
    graphs = []
    for name in ("frame", "window"):
        path = folder / info.graphs[name]
        if not path.is_file():
            raise ConfigError(f"{path}: the {name} graph named in {folder / 'ifc_export.json'} is missing")
        graphs.append(open_graph(info, path, device=device, num_threads=num_threads, providers=providers))
    model = RuntimeClipModel(info, graphs[0], graphs[1], folder)
    if info.inference:
        setattr(model, RECOMMENDED_ATTRIBUTE, dict(info.inference))
    return model
