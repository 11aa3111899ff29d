"""The IFC model: ResNet backbone + IFC transformer + class head + dynamic mask head.

One clip of T frames is one batch element: the backbone runs per frame, the encoder lets the frames of a clip
communicate through the memory bus, and the decoder's queries each describe one instance over the whole clip.
Video-level windowing and tracking live in `ifc_sdk.inference`, not here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ifc_sdk.modeling.backbone import ResNet
from ifc_sdk.modeling.config import IFCConfig
from ifc_sdk.modeling.mask_head import MaskHead
from ifc_sdk.modeling.mlp import MLP
from ifc_sdk.modeling.position_encoding import PositionEmbeddingSine
from ifc_sdk.modeling.transformer import IFCTransformer

Features = dict[str, torch.Tensor]
LEVEL_STRIDES = {"res2": 4, "res3": 8, "res4": 16, "res5": 32}


def level_masks(
    image_sizes: Sequence[tuple[int, int]],
    padded_size: tuple[int, int],
    level: str,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Padding mask of one feature level: bool ``(N, ceil(Hp/s), ceil(Wp/s))``, True where row >= ceil(h/s)
    or column >= ceil(w/s) for each image's unpadded size (h, w)."""
    s = LEVEL_STRIDES[level]
    hp, wp = math.ceil(padded_size[0] / s), math.ceil(padded_size[1] / s)
    sizes = torch.tensor([[math.ceil(h / s), math.ceil(w / s)] for h, w in image_sizes], device=device)
    rows = torch.arange(hp, device=device)[None, :, None] >= sizes[:, 0, None, None]
    cols = torch.arange(wp, device=device)[None, None, :] >= sizes[:, 1, None, None]
    return rows | cols


class IFC(nn.Module):
    """Inter-Frame Communication Transformer for video instance segmentation.

    Args:
        backbone: a `ResNet` returning res2..res5.
        transformer: the `IFCTransformer`.
        mask_head: the `MaskHead`.
        num_classes: number of object classes (the class head has one more output: no-object, last).
        num_queries: number of object queries.
        config: the configuration the parts were built from (saved with the weights).
    """

    def __init__(
        self,
        backbone: ResNet,
        transformer: IFCTransformer,
        mask_head: MaskHead,
        *,
        num_classes: int,
        num_queries: int,
        config: IFCConfig,
    ) -> None:
        super().__init__()
        dim = transformer.memory_bus.shape[1]
        self.config = config
        self.backbone = backbone
        self.position_encoding = PositionEmbeddingSine(dim // 2)
        self.input_proj = nn.Conv2d(backbone.out_channels["res5"], dim, 1)
        self.transformer = transformer
        self.query_embed = nn.Embedding(num_queries, dim)
        self.class_embed = MLP(dim, dim, num_classes + 1, 2)
        self.mask_head = mask_head
        self.register_buffer("pixel_mean", torch.tensor(config.pixel_mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(config.pixel_std).view(-1, 1, 1), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.query_embed.weight.device

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def normalize(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8/float ``(N, 3, H, W)`` RGB 0-255 -> float32 normalised, in the channel order of the weights."""
        if self.config.input_format == "BGR":
            frames = frames.flip(1)
        return ((frames.float() - self.pixel_mean) / self.pixel_std).contiguous()

    def backbone_features(self, images: torch.Tensor) -> Features:
        """``(N, 3, H, W)`` normalised images -> ``{"res2": ..., "res5": ...}`` (see `ResNet.forward`)."""
        return self.backbone(images)

    def forward_clips(
        self,
        res3: torch.Tensor,
        res4: torch.Tensor,
        res5: torch.Tensor,
        num_frames: int,
        masks: dict[str, torch.Tensor] | None = None,
        aux: bool = True,
    ) -> dict:
        """Transformer and heads on clips whose backbone features are given.

        Args:
            res3, res4, res5: ``(B*T, C_l, h_l, w_l)`` features, the T frames of each clip consecutive.
            num_frames: T.
            masks: optional padding masks ``{"res5": (B*T, h32, w32)}`` (True = padding).
            aux: also return every decoder layer's predictions (training).

        Returns:
            ``{"pred_logits": (B, Q, K+1), "pred_masks": (B, Q, T, h8, w8)}`` from the last decoder layer, plus
            ``"aux_outputs"``: a list of the same for the earlier layers when ``aux``.
        """
        mask5 = None if masks is None else masks["res5"]
        if mask5 is None:
            mask5_for_pos = torch.zeros(res5.shape[0], *res5.shape[-2:], dtype=torch.bool, device=res5.device)
        else:
            mask5_for_pos = mask5
        pos = self.position_encoding(mask5_for_pos).to(res5.dtype)
        src = self.input_proj(res5)
        hs, memory = self.transformer(
            src, pos, self.query_embed.weight, num_frames, mask5, return_intermediate=aux
        )  # (L, B, Q, C), (B*T, C, h32, w32)
        logits = self.class_embed(hs)  # (L, B, Q, K+1)
        pred_masks = self.mask_head(hs, memory, res4, res3)  # (L, B, Q, T, h8, w8)
        out = {"pred_logits": logits[-1], "pred_masks": pred_masks[-1]}
        if aux:
            out["aux_outputs"] = [
                {"pred_logits": lg, "pred_masks": pm} for lg, pm in zip(logits[:-1], pred_masks[:-1])
            ]
        return out

    def frame_states(
        self,
        res3: torch.Tensor,
        res4: torch.Tensor,
        res5: torch.Tensor,
        mask5: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """The part of `forward_clips` that depends on each frame alone, for frames given in any grouping.

        Position encoding, ``input_proj``, the first encoder frame layer (a frame's tokens with the learned
        initial memory bus) and the mask head's lateral adapters see one frame at a time, so when windows
        overlap (stride < window) they are computed once per frame instead of once per window. The result
        replaces res3/res4/res5 (it is also ~2.5x smaller); feed the frames of a clip to `forward_frame_states`.

        Args:
            res3, res4, res5: ``(N, C_l, h_l, w_l)`` backbone features of N frames.
            mask5: optional ``(N, h32, w32)`` padding mask of res5 (True = padding).

        Returns:
            Per-frame tensors (first dimension N): ``tokens (N, HW, C)``, ``bus (N, M, C)``,
            ``pos (N, HW, C)``, ``fpn4 (N, C, h16, w16)``, ``fpn3 (N, C, h8, w8)`` (and ``mask5 (N, HW)``).
        """
        mask_for_pos = mask5
        if mask_for_pos is None:
            mask_for_pos = torch.zeros(res5.shape[0], *res5.shape[-2:], dtype=torch.bool, device=res5.device)
        pos = self.position_encoding(mask_for_pos).to(res5.dtype)
        src = self.input_proj(res5)
        tokens, bus, pos_tokens = self.transformer.first_frame_layer(src, pos, mask5)
        fpn4, fpn3 = self.mask_head.laterals(res4, res3)
        states = {"tokens": tokens, "bus": bus, "pos": pos_tokens, "fpn4": fpn4, "fpn3": fpn3}
        if mask5 is not None:
            states["mask5"] = mask5.flatten(1)
        return states

    def forward_frame_states(
        self,
        states: dict[str, torch.Tensor],
        num_frames: int,
        size5: tuple[int, int],
        frame_chunk: int | None = None,
    ) -> dict:
        """`forward_clips` (``aux=False``) from `frame_states` of B clips of ``num_frames`` frames each (frames of
        a clip consecutive along the first dimension); ``size5`` is res5's ``(h32, w32)``. Same result as
        `forward_clips` on the frames' backbone features. ``frame_chunk``: run the per-frame parts (encoder frame
        layers, mask head pixel features) on groups of this many frames; the result is the same, the
        intermediate activations smaller (fewer fresh pages for the CPU to fault in)."""
        hs, memory = self.transformer.forward_tokens(
            states["tokens"],
            states["bus"],
            states["pos"],
            self.query_embed.weight,
            num_frames,
            size5,
            states.get("mask5"),
            return_intermediate=False,
            first_layer_done=True,
            frame_chunk=frame_chunk,
        )
        logits = self.class_embed(hs)
        pred_masks = self.mask_head(
            hs, memory, None, None, laterals=(states["fpn4"], states["fpn3"]), frame_chunk=frame_chunk
        )
        return {"pred_logits": logits[-1], "pred_masks": pred_masks[-1]}

    def forward(self, images: torch.Tensor, image_sizes: Sequence[tuple[int, int]] | None = None) -> dict:
        """Training / batch forward.

        Args:
            images: float ``(B, T, 3, H, W)`` normalised clips, zero-padded to a common size.
            image_sizes: unpadded ``(h, w)`` per clip (all frames of a clip share it); None = no padding.

        Returns: see `forward_clips` (with ``aux_outputs``).
        """
        b, t = images.shape[:2]
        feats = self.backbone_features(images.flatten(0, 1))
        masks = None
        if image_sizes is not None and any(tuple(s) != tuple(images.shape[-2:]) for s in image_sizes):
            sizes = [tuple(s) for s in image_sizes for _ in range(t)]
            masks = {"res5": level_masks(sizes, images.shape[-2:], "res5", images.device)}
        return self.forward_clips(feats["res3"], feats["res4"], feats["res5"], t, masks, aux=True)
