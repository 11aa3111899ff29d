"""IFC's mask head: a small FPN over the encoder output, and one dynamic 1x1 convolution per query.

Differs from DETR's MaskHeadSmallConv: the features start from the encoder output (not from the attention
maps), the lateral adapters are added after NEAREST upsampling, and the masks come from a per-query dynamic
convolution rather than from concatenated attention maps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ifc_sdk.modeling.mlp import MLP
from ifc_sdk.modeling.transformer import frame_slices


class DepthwiseSeparableConv2d(nn.Module):
    """Depthwise k x k conv (+bias) + ReLU, then pointwise 1x1 conv (+bias) + ReLU."""

    def __init__(self, channels: int, out_channels: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)
        self.pointwise = nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.pointwise(F.relu(self.depthwise(x))))


class MaskHead(nn.Module):
    """Produces per-query mask logits at stride 8.

    Args:
        dim: hidden size of the transformer (= every conv's width here).
        fpn_dims: channels of the res4 and res3 features.
        num_groups: GroupNorm groups.
    """

    def __init__(self, dim: int, fpn_dims: tuple[int, int] = (1024, 512), num_groups: int = 32) -> None:
        super().__init__()
        groups = min(num_groups, dim)
        self.lay1 = nn.Conv2d(dim, dim, 3, padding=1)
        self.gn1 = nn.GroupNorm(groups, dim)
        self.lay2 = nn.Conv2d(dim, dim, 3, padding=1)
        self.gn2 = nn.GroupNorm(groups, dim)
        self.lay3 = nn.Conv2d(dim, dim, 3, padding=1)
        self.gn3 = nn.GroupNorm(groups, dim)
        self.out_lay = DepthwiseSeparableConv2d(dim, dim, 5)
        self.adapter1 = nn.Conv2d(fpn_dims[0], dim, 1)
        self.adapter2 = nn.Conv2d(fpn_dims[1], dim, 1)
        self.convert_to_weight = MLP(dim, dim, dim, 3)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.constant_(m.bias, 0)

    def laterals(self, res4: torch.Tensor, res3: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The lateral 1x1 adapters, ``(adapter1(res4), adapter2(res3))``: per frame and independent of the
        clip, so a caller sliding overlapping windows can compute them once per frame."""
        return self.adapter1(res4), self.adapter2(res3)

    def pixel_features(
        self,
        memory: torch.Tensor,
        res4: torch.Tensor | None,
        res3: torch.Tensor | None,
        laterals: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``memory (N, C, H/32, W/32)``, ``res4 (N, C4, H/16, W/16)``, ``res3 (N, C3, H/8, W/8)``
        -> ``(N, C, H/8, W/8)``. ``laterals``: `laterals` of res4/res3 computed beforehand (then res4 and res3
        are not used)."""
        fpn4, fpn3 = self.laterals(res4, res3) if laterals is None else laterals
        x = self.gn1(self.lay1(memory))
        x = fpn4 + F.interpolate(x, size=fpn4.shape[-2:], mode="nearest")
        x = self.gn2(self.lay2(x))
        x = fpn3 + F.interpolate(x, size=fpn3.shape[-2:], mode="nearest")
        x = F.relu(self.gn3(self.lay3(x)))
        return self.out_lay(x)

    def forward(
        self,
        hs: torch.Tensor,
        memory: torch.Tensor,
        res4: torch.Tensor | None,
        res3: torch.Tensor | None,
        laterals: tuple[torch.Tensor, torch.Tensor] | None = None,
        frame_chunk: int | None = None,
    ) -> torch.Tensor:
        """``hs (L, B, Q, C)`` decoder outputs; the rest as in `pixel_features` with N = B*T
        -> mask logits ``(L, B, Q, T, H/8, W/8)``.

        ``frame_chunk`` (one clip, B = 1): compute the pixel features and masks for groups of this many frames
        (same result; smaller intermediate activations, which the CPU allocates and page-faults afresh when
        they are large)."""
        weights = self.convert_to_weight(hs)  # (L, B, Q, C)
        b = hs.shape[1]
        masks = []
        for part in frame_slices(memory.shape[0], frame_chunk if b == 1 else None):
            lat = None if laterals is None else (laterals[0][part], laterals[1][part])
            feats = self.pixel_features(
                memory[part], None if res4 is None else res4[part], None if res3 is None else res3[part], lat
            )  # (B*t, C, H/8, W/8)
            feats = feats.reshape(b, -1, *feats.shape[1:])  # (B, t, C, H/8, W/8)
            masks.append(torch.einsum("lbqc,btchw->lbqthw", weights, feats))  # (L, B, Q, t, H/8, W/8)
        return masks[0] if len(masks) == 1 else torch.cat(masks, dim=3)
