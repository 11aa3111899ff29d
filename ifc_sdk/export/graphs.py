"""The two graphs IFC's video inference splits into, as exportable `nn.Module`s.

`VideoSegmenter` runs a model in two parts (the clip-model protocol, `ifc_sdk.inference`): per frame, once
however many windows contain the frame, and per window. Each part is exported as one graph:

- `FrameGraph`: normalised frames ``(N, 3, H, W)`` -> the per-frame states (`IFC.frame_states`):
  tokens ``(N, HW, C)``, bus ``(N, M, C)``, pos ``(N, HW, C)``, fpn4 ``(N, C, H/16, W/16)``,
  fpn3 ``(N, C, H/8, W/8)`` (HW = res5's ``ceil(H/32) * ceil(W/32)``).
- `WindowGraph`: the states of one window's T frames -> class logits ``(Q, K+1)`` and mask logits
  ``(Q, T, H/8, W/8)`` (`IFC.forward_frame_states` with one clip).

N, T, H and W are dynamic. The graphs trace the model's accelerator kernels (plain ``batch_norm`` and
``scaled_dot_product_attention`` instead of the CPU reference path's in-place ``out=`` batch norm and
``multi_head_attention_forward``): the same arithmetic in ops every exporter and runtime knows.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ifc_sdk.modeling import kernels
from ifc_sdk.modeling.ifc import IFC

STATE_NAMES = ("tokens", "bus", "pos", "fpn4", "fpn3")
FRAME_INPUT = "images"
WINDOW_OUTPUTS = ("pred_logits", "pred_masks")
# Smallest frame side the graphs are traced for: res5 keeps at least 2 x 2 positions (a size of 1 would be
# specialised by the tracer).
MIN_SIDE = 33


@contextlib.contextmanager
def traceable_kernels() -> Iterator[None]:
    """Trace the model's accelerator kernels (see the module docstring) while the block runs.

    `ifc_sdk.modeling.kernels.reference_kernels` is the one switch every module asks; it is restored on exit.
    """
    original = kernels.reference_kernels
    kernels.reference_kernels = lambda device: False
    try:
        yield
    finally:
        kernels.reference_kernels = original


def export_copy(model: IFC) -> IFC:
    """A CPU fp32 eval copy of ``model`` to trace, FrozenBN unfused (a runtime folds it itself); the user's
    model is left as it was."""
    clone = copy.deepcopy(model).float().cpu().eval()
    for module in clone.modules():
        if hasattr(module, "fused_weight"):
            module.fused_weight = None
            module.fused_bias = None
    return clone


class FrameGraph(nn.Module):
    """Normalised frames ``(N, 3, H, W)`` float32 -> ``(tokens, bus, pos, fpn4, fpn3)`` (see module doc)."""

    def __init__(self, model: IFC) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats = self.model.backbone_features(images)
        states = self.model.frame_states(feats["res3"], feats["res4"], feats["res5"])
        return tuple(states[name] for name in STATE_NAMES)


class WindowGraph(nn.Module):
    """One window's frame states (first dimension T, frames in order) -> class logits ``(Q, K+1)`` and
    mask logits ``(Q, T, H/8, W/8)``."""

    def __init__(self, model: IFC) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        tokens: torch.Tensor,
        bus: torch.Tensor,
        pos: torch.Tensor,
        fpn4: torch.Tensor,
        fpn3: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        states = {"tokens": tokens, "bus": bus, "pos": pos, "fpn4": fpn4, "fpn3": fpn3}
        # res5 is res4's size halved, rounded up (a stride-2 convolution), or res4's size when dilated.
        step = 1 if self.model.config.res5_dilation == 2 else 2
        size5 = ((fpn4.shape[-2] + step - 1) // step, (fpn4.shape[-1] + step - 1) // step)
        out = self.model.forward_frame_states(states, tokens.shape[0], size5)
        return out["pred_logits"][0], out["pred_masks"][0]


@dataclass
class ExportGraphs:
    """Both graphs of one model with the example inputs they are traced on and their dynamic dimensions
    (in `torch.export`'s ``dynamic_shapes`` form, keyed by input name)."""

    frame: FrameGraph
    window: WindowGraph
    frame_example: tuple[torch.Tensor]
    window_example: tuple[torch.Tensor, ...]
    frame_dynamic: dict[str, dict[int, object]]
    window_dynamic: dict[str, dict[int, object]]


@torch.no_grad()
def build_graphs(
    model: IFC, example_frames: int = 2, example_size: tuple[int, int] = (160, 224)
) -> ExportGraphs:
    """The two graphs of ``model`` (an eval copy) with example inputs of ``example_frames`` frames of
    ``example_size``; every frame count and size >= `MIN_SIDE` pixels is dynamic.

    The window graph's dimensions are related in ways the tracer infers itself (HW = ceil(h16/2) * ceil(w16/2),
    h16 = ceil(h8/2)), hence ``Dim.AUTO`` for them. The window length T is traced with T = 2; the graph is
    valid for any T (the tracer only records T != 1 to pick a copy-free reshape; runtimes run T = 1 too, and
    the tests check it)."""
    copy_ = export_copy(model)
    frame, window = FrameGraph(copy_).eval(), WindowGraph(copy_).eval()
    images = torch.zeros(example_frames, 3, *example_size)
    with traceable_kernels():
        states = tuple(s.clone() for s in frame(images))  # contiguous, no shared storage
    n = torch.export.Dim("N", min=1)
    h = torch.export.Dim("H", min=MIN_SIDE)
    w = torch.export.Dim("W", min=MIN_SIDE)
    auto = torch.export.Dim.AUTO
    window_dynamic = {
        "tokens": {0: auto, 1: auto},
        "bus": {0: auto},
        "pos": {0: auto, 1: auto},
        "fpn4": {0: auto, 2: auto, 3: auto},
        "fpn3": {0: auto, 2: auto, 3: auto},
    }
    return ExportGraphs(
        frame=frame,
        window=window,
        frame_example=(images,),
        window_example=states,
        frame_dynamic={FRAME_INPUT: {0: n, 2: h, 3: w}},
        window_dynamic=window_dynamic,
    )
