"""The clip-model protocol: what `VideoSegmenter` needs of a model, so any backend plugs into one video loop.

Video inference runs IFC in two parts. Per frame, once however many windows the frame is in: the backbone and
the parts of the heads that see one frame at a time. Per window: the transformer's inter-frame layers and the
heads. A `ClipModel` exposes exactly these two parts:

* ``config``: the `IFCConfig` (categories, num_classes, input_format, pixel_mean/std, num_queries, ...).
* ``device``: where the segmenter puts the input frames (``torch.device("cpu")`` for CPU runtimes).
* ``prepare()``: one-time, idempotent set-up before a video.
* ``frame_states(images)``: uint8 ``(N, 3, H, W)`` RGB frames, already resized to network size, on ``device``
  -> a dict of tensors whose first dimension is N. Normalisation (channel order, pixel mean/std) happens
  inside, so each backend applies its own.
* ``window_heads(states, num_frames)``: the `frame_states` of one window's T frames stacked in order (first
  dimension T) -> ``(class logits (Q, K+1), mask logits (Q, T, H/8, W/8))`` as torch tensors.

`VideoSegmenter` does everything else (resizing to network size, batching, windowing, autocast, tracking,
upsampling, RLE), so an exported graph (ONNX Runtime, OpenVINO, TorchScript) only implements the two parts:
runtime backends return torch CPU tensors (``torch.from_numpy``) and ignore autocast, which the segmenter
enters around both calls for bf16/fp16. `EagerClipModel` adapts the PyTorch `IFC`; `as_clip_model` gives a
`ClipModel` for either.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import torch

from ifc_sdk.errors import ConfigError
from ifc_sdk.modeling import kernels
from ifc_sdk.modeling.config import IFCConfig
from ifc_sdk.modeling.ifc import IFC

__all__ = ["ClipModel", "EagerClipModel", "as_clip_model"]


@runtime_checkable
class ClipModel(Protocol):
    """IFC split in the two parts video inference runs: per frame, and per window."""

    config: IFCConfig

    @property
    def device(self) -> torch.device:
        """Where the segmenter puts the input frames."""
        ...

    def prepare(self) -> None:
        """One-time, idempotent set-up before a video (eager: fold FrozenBN, channels_last on accelerators)."""
        ...

    def frame_states(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """uint8 ``(N, 3, H, W)`` RGB frames, resized to network size, on `device` -> the per-frame states the
        windows reuse, every tensor with N as its first dimension (eager: tokens (N, HW, C), bus (N, M, C),
        pos (N, HW, C), fpn4 (N, C, H/16, W/16), fpn3 (N, C, H/8, W/8)). Normalises inside."""
        ...

    def window_heads(
        self, states: dict[str, torch.Tensor], num_frames: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One window: the `frame_states` of its T frames stacked in order (first dimension T) -> class
        logits ``(Q, K+1)`` and mask logits ``(Q, T, H/8, W/8)`` (float32 or the autocast dtype)."""
        ...


class EagerClipModel:
    """The PyTorch `IFC` as a `ClipModel`.

    Args:
        model: the `IFC` (its device and weights are used as they are).
        frame_chunk: run the per-frame parts of each window (encoder frame layers, mask head pixel features)
            on groups of this many frames; same result, smaller activations (see `IFC.forward_frame_states`).

    On accelerators `prepare` converts the backbone to channels_last (NHWC) unless
    ``model.backbone.channels_last`` is False; on the CPU the backbone keeps the reference's NCHW computation.
    """

    def __init__(self, model: IFC, frame_chunk: int | None = None) -> None:
        self.model = model
        self.frame_chunk = frame_chunk

    @property
    def config(self) -> IFCConfig:
        return self.model.config

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def channels_last(self) -> bool:
        """Whether the backbone runs in NHWC (accelerators only)."""
        backbone_allows = getattr(self.model.backbone, "channels_last", True)
        return not kernels.reference_kernels(self.device) and backbone_allows

    def prepare(self) -> None:
        """Fold FrozenBN into the convolutions (used off the CPU) and, on accelerators, go channels_last."""
        self.model.backbone.fuse_frozen_bn()
        if self.channels_last:  # NHWC convolutions (tensor cores); the CPU keeps NCHW
            self.model.backbone.to(memory_format=torch.channels_last)

    def frame_states(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """uint8 ``(N, 3, H, W)`` RGB -> `IFC.frame_states` of the N frames (tokens, bus, pos, fpn4, fpn3)."""
        x = self.model.normalize(images)  # (N, 3, H, W) float32 in the weights' channel order
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        feats = self.model.backbone_features(x)
        return self.model.frame_states(feats["res3"], feats["res4"], feats["res5"])

    def window_heads(
        self, states: dict[str, torch.Tensor], num_frames: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One window (its frames' states stacked, first dimension T) -> logits ``(Q, K+1)``,
        masks ``(Q, T, h8, w8)``."""
        out = self.model.forward_frame_states(
            states, num_frames, self._size5(states), frame_chunk=self.frame_chunk
        )
        return out["pred_logits"][0], out["pred_masks"][0]

    def _size5(self, states: dict[str, torch.Tensor]) -> tuple[int, int]:
        """res5's ``(h32, w32)`` from res4's ``(h16, w16)``: res5 starts with a stride-2 convolution
        (ceil(h/2)), or keeps res4's size when dilated."""
        h16, w16 = states["fpn4"].shape[-2:]
        step = 1 if self.model.config.res5_dilation == 2 else 2
        return math.ceil(h16 / step), math.ceil(w16 / step)


def as_clip_model(model: IFC | ClipModel) -> ClipModel:
    """A `ClipModel` for ``model``: an `IFC` is wrapped in `EagerClipModel`, anything that already satisfies
    the protocol is returned as is."""
    if isinstance(model, IFC):
        return EagerClipModel(model)
    if isinstance(model, ClipModel):
        return model
    raise ConfigError(
        f"model must be an IFC or a ClipModel (config, device, prepare, frame_states, window_heads), "
        f"got {type(model).__name__}"
    )
