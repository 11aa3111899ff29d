"""Test-time preprocessing: the reference's shortest-edge resize, on the model's device.

The reference resizes each frame with PIL's bilinear filter (antialiased when downscaling) on the uint8 image.
On the CPU this module does exactly that (bit-identical to the reference). On an accelerator the same filter
runs as ``F.interpolate(..., antialias=True)`` on the whole batch there, rounded back to uint8: it agrees with
PIL within one grey level (PIL uses fixed-point weights), and the frames cross the bus at their source size.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ifc_sdk.modeling import kernels


def resized_shape(height: int, width: int, short_side: int, max_size: int = 1333) -> tuple[int, int]:
    """detectron2 ``ResizeShortestEdge`` output size: the short side becomes ``short_side``, the long side
    scales along but stays <= ``max_size``; each side is rounded with ``int(x + 0.5)``."""
    size = float(short_side)
    scale = size / min(height, width)
    new_h, new_w = (size, scale * width) if height < width else (scale * height, size)
    if max(new_h, new_w) > max_size:
        scale = max_size / max(new_h, new_w)
        new_h, new_w = new_h * scale, new_w * scale
    return int(new_h + 0.5), int(new_w + 0.5)


def to_tensor(frames: np.ndarray | torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` (numpy or torch) -> uint8 ``(N, 3, H, W)`` on ``device``."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    return frames.to(device, non_blocking=True).permute(0, 3, 1, 2)


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 ``(N, 3, H, W)`` -> uint8 ``(N, 3, size[0], size[1])`` with PIL's bilinear filter (exact on the
    CPU, within one grey level elsewhere)."""
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    if kernels.reference_kernels(frames.device):
        hwc = frames.permute(0, 2, 3, 1).numpy()
        out = np.stack(
            [np.asarray(Image.fromarray(f).resize((size[1], size[0]), Image.BILINEAR)) for f in hwc]
        )
        return torch.from_numpy(out).permute(0, 3, 1, 2)
    out = F.interpolate(frames.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
    return out.round_().clamp_(0, 255).to(torch.uint8)
