"""DETR's sine position encoding, normalised to [0, 2*pi] over the unpadded extent of each image."""

from __future__ import annotations

import math

import torch
from torch import nn


class PositionEmbeddingSine(nn.Module):
    """Sine/cosine encoding of (y, x) positions; ``num_pos_feats`` channels for each of y and x.

    Padding (``mask`` True) is excluded from the running position count, so each image's unpadded extent maps
    to [0, 2*pi]. Output channels are the y part followed by the x part, as in DETR.
    """

    def __init__(
        self,
        num_pos_feats: int = 128,
        temperature: float = 10000.0,
        scale: float = 2 * math.pi,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.scale = scale
        self.eps = eps

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        """``mask`` bool ``(N, H, W)`` (True = padding) -> float32 ``(N, 2 * num_pos_feats, H, W)``."""
        not_mask = ~mask
        y_embed = not_mask.cumsum(1, dtype=torch.float32)
        x_embed = not_mask.cumsum(2, dtype=torch.float32)
        y_embed = y_embed / (y_embed[:, -1:, :] + self.eps) * self.scale
        x_embed = x_embed / (x_embed[:, :, -1:] + self.eps) * self.scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=mask.device)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / self.num_pos_feats)
        pos_x = x_embed[:, :, :, None] / dim_t
        pos_y = y_embed[:, :, :, None] / dim_t
        pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
        pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)
