"""IFC's mask head: a small FPN over the encoder output, and one dynamic 1x1 convolution per query.

Differs from DETR's MaskHeadSmallConv: the features start from the encoder output (not from the attention
maps), the lateral adapters are added after NEAREST upsampling, and the masks come from a per-query dynamic
convolution rather than from concatenated attention maps.

Optionally (``position=True``, not in the reference) each query also predicts where its object is, and its mask
logits get a location prior, ``-beta * |p - c|^2`` over normalised pixel positions p around its centre c. The
masks are dot products of a query's weights with translation-equivariant pixel features, so without position
two objects that look the same get the same mask logits wherever they are, and a query cannot select one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ifc_sdk.modeling.mlp import MLP
from ifc_sdk.modeling.transformer import frame_slices

PRIOR_START = 2.0  # initial beta: -2 * |p - c|^2 is -1 logit at a corner from the centre


def normalized_grid(n: int, h: int, w: int, mask: torch.Tensor | None, device: torch.device) -> torch.Tensor:
    """Pixel-centre positions in [0, 1] over each frame's unpadded extent: ``(N, 2, h, w)`` as (x, y).

    ``mask``: bool ``(N, h, w)``, True on padding (excluded from the extent); None = no padding."""
    if mask is None:
        mask = torch.zeros(n, h, w, dtype=torch.bool, device=device)
    not_mask = (~mask).float()
    y = not_mask.cumsum(1) - 0.5  # (N, h, w)
    x = not_mask.cumsum(2) - 0.5
    y = y / not_mask.sum(1, keepdim=True).clamp(min=1)
    x = x / not_mask.sum(2, keepdim=True).clamp(min=1)
    return torch.stack((x, y), dim=1)


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
        position: add the location prior (see the module docstring). It starts centred, with
            ``beta = PRIOR_START``: a mild prior (1 logit at the corners), so a model trained without it keeps
            nearly its outputs when fine-tuned with it.
    """

    def __init__(
        self,
        dim: int,
        fpn_dims: tuple[int, int] = (1024, 512),
        num_groups: int = 32,
        position: bool = False,
    ) -> None:
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
        # Per query: centre (x, y) as logits of [0, 1] positions, and the prior's strength before softplus.
        self.locate = MLP(dim, dim, 3, 2) if position else None
        if self.locate is not None:
            nn.init.zeros_(self.locate.layers[-1].weight)
            nn.init.constant_(self.locate.layers[-1].bias, 0.0)
            nn.init.constant_(self.locate.layers[-1].bias[2], math.log(math.expm1(PRIOR_START)))

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
        mask8: torch.Tensor | None = None,
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
            logits = torch.einsum("lbqc,btchw->lbqthw", weights, feats)  # (L, B, Q, t, H/8, W/8)
            if self.locate is not None:
                logits = logits + self.location_prior(hs, feats, None if mask8 is None else mask8[part])
            masks.append(logits)
        return masks[0] if len(masks) == 1 else torch.cat(masks, dim=3)

    def locations(self, hs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``hs (L, B, Q, C)`` -> each query's centre ``(L, B, Q, 2)`` as (x, y) in [0, 1] of the frame, and the
        strength ``beta (L, B, Q)`` of its location prior."""
        loc = self.locate(hs)  # (L, B, Q, 3)
        return loc[..., :2].sigmoid(), F.softplus(loc[..., 2])

    def location_prior(
        self, hs: torch.Tensor, feats: torch.Tensor, mask8: torch.Tensor | None
    ) -> torch.Tensor:
        """``-beta * |p - c|^2`` of each query over the pixels of ``feats (B, t, C, h, w)``, with c and beta
        predicted from ``hs (L, B, Q, C)`` -> ``(L, B, Q, t, h, w)``."""
        b, t, _, h, w = feats.shape
        centre, beta = self.locations(hs)
        centre = centre[..., None, None, None]  # (L, B, Q, 2, 1, 1, 1) as (x, y)
        beta = beta[..., None, None, None]  # (L, B, Q, 1, 1, 1)
        grid = normalized_grid(b * t, h, w, mask8, feats.device).to(feats.dtype)  # (B*t, 2, h, w)
        grid = grid.reshape(b, t, 2, h, w).transpose(1, 2)[None, :, None]  # (1, B, 1, 2, t, h, w)
        return -beta * ((grid - centre) ** 2).sum(3)
