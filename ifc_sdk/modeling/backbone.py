"""ResNet backbone in detectron2's layout (stem, res2..res5, FrozenBatchNorm).

Parameter names follow detectron2 (``stem.conv1.norm.running_var``, ``res4.5.conv2.weight``) so reference
checkpoints map onto this module by a prefix change alone. ``stride_in_1x1`` selects where the stride-2 of the
first block of res3..res5 sits: on the 1x1 ``conv1`` (MSRA-style, the R101 release) or on the 3x3 ``conv2``
(torchvision-style, the R50 release).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ifc_sdk.modeling import kernels

DEPTH_TO_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine parameters: ``y = (x - mean) / sqrt(var + eps) * w + b``."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features) - eps)

    def scale_and_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel ``(scale, shift)`` equivalent to this normalisation."""
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        return scale, self.bias - self.running_mean * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.requires_grad:  # detectron2's inference path; bit-identical to the reference
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )
        scale, shift = self.scale_and_shift()
        return x * scale.to(x.dtype).view(1, -1, 1, 1) + shift.to(x.dtype).view(1, -1, 1, 1)

    def forward_inplace(self, x: torch.Tensor) -> torch.Tensor:
        """`forward` overwriting ``x`` (a fresh convolution output) when no gradient is needed: the same
        kernel as ``F.batch_norm`` (bit-identical), without allocating and page-faulting a second activation."""
        if x.requires_grad or x.dtype != self.weight.dtype or not kernels.reference_kernels(x.device):
            return self(x)
        empty = x.new_empty(0)
        torch.ops.aten.native_batch_norm.out(
            x,
            self.weight,
            self.bias,
            self.running_mean,
            self.running_var,
            False,
            0.0,
            self.eps,
            out=x,
            save_mean=empty,
            save_invstd=empty.clone(),
        )
        return x


class ConvNorm(nn.Conv2d):
    """A bias-free convolution followed by its FrozenBatchNorm (detectron2's ``Conv2d(norm=...)``).

    ``fuse()`` folds the normalisation into the convolution for inference on accelerators (one kernel instead
    of two); on the CPU the unfused reference computation is kept for bit-exact outputs. The state dict keeps
    its layout either way.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=False,
        )
        self.norm = FrozenBatchNorm2d(out_channels)
        # Folded (weight, bias) for inference; non-persistent buffers so `.to(device)` moves them.
        self.register_buffer("fused_weight", None, persistent=False)
        self.register_buffer("fused_bias", None, persistent=False)

    @torch.no_grad()
    def fuse(self) -> None:
        """Precompute the folded weight and bias (call again after loading new weights)."""
        scale, shift = self.norm.scale_and_shift()
        self.fused_weight = self.weight * scale.view(-1, 1, 1, 1)
        self.fused_bias = shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            self.fused_weight is not None
            and not torch.is_grad_enabled()
            and not kernels.reference_kernels(x.device)
        ):
            return F.conv2d(
                x,
                self.fused_weight.to(x.dtype),
                self.fused_bias.to(x.dtype),
                self.stride,
                self.padding,
                self.dilation,
                self.groups,
            )
        return self.norm.forward_inplace(super().forward(x))


class BasicStem(nn.Module):
    """conv 7x7/2 + FrozenBN + ReLU + max-pool 3x3/2: ``(N, 3, H, W) -> (N, C, ceil(H/4), ceil(W/4))``."""

    def __init__(self, in_channels: int = 3, out_channels: int = 64) -> None:
        super().__init__()
        self.conv1 = ConvNorm(in_channels, out_channels, 7, stride=2, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu_(self.conv1(x))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


class BottleneckBlock(nn.Module):
    """1x1 -> 3x3 -> 1x1 bottleneck with a projection shortcut when the shape changes."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        bottleneck_channels: int,
        *,
        stride: int = 1,
        num_groups: int = 1,
        stride_in_1x1: bool = False,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        if in_channels != out_channels:
            self.shortcut = ConvNorm(in_channels, out_channels, 1, stride=stride)
        else:
            self.shortcut = None
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = ConvNorm(in_channels, bottleneck_channels, 1, stride=stride_1x1)
        self.conv2 = ConvNorm(
            bottleneck_channels,
            bottleneck_channels,
            3,
            stride=stride_3x3,
            padding=dilation,
            dilation=dilation,
            groups=num_groups,
        )
        self.conv3 = ConvNorm(bottleneck_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.conv1(x))
        out = F.relu_(self.conv2(out))
        out = self.conv3(out)
        shortcut = x if self.shortcut is None else self.shortcut(x)
        if out.requires_grad:
            out = out + shortcut
        else:
            out = out.add_(shortcut)  # in place: one activation fewer to allocate (same sum, same bits)
        return F.relu_(out)


class ResNet(nn.Module):
    """detectron2's ResNet returning ``res2..res5`` (strides 4, 8, 16, 32).

    Args:
        depth: 50 or 101.
        stem_channels: output channels of the stem (64 in the releases).
        res2_channels: output channels of res2; each later stage doubles them (256 -> 2048).
        bottleneck_channels: inner width of res2's blocks (``WIDTH_PER_GROUP * NUM_GROUPS``); doubles per stage.
        stride_in_1x1: put the stride on conv1 (MSRA) instead of conv2 (torchvision).
        res5_dilation: 1 or 2 (2 keeps res5 at stride 16).
    """

    def __init__(
        self,
        depth: int = 50,
        *,
        stem_channels: int = 64,
        res2_channels: int = 256,
        bottleneck_channels: int = 64,
        num_groups: int = 1,
        stride_in_1x1: bool = False,
        res5_dilation: int = 1,
    ) -> None:
        super().__init__()
        if depth not in DEPTH_TO_BLOCKS:
            raise ValueError(f"ResNet depth must be one of {sorted(DEPTH_TO_BLOCKS)}, got {depth}")
        self.stem = BasicStem(3, stem_channels)
        in_ch, out_ch, mid_ch = stem_channels, res2_channels, bottleneck_channels
        self.stage_names = ("res2", "res3", "res4", "res5")
        self.out_channels: dict[str, int] = {}
        for i, (name, num_blocks) in enumerate(zip(self.stage_names, DEPTH_TO_BLOCKS[depth])):
            dilation = res5_dilation if name == "res5" else 1
            first_stride = 1 if i == 0 or dilation == 2 else 2
            blocks = []
            for b in range(num_blocks):
                blocks.append(
                    BottleneckBlock(
                        in_ch,
                        out_ch,
                        mid_ch,
                        stride=first_stride if b == 0 else 1,
                        num_groups=num_groups,
                        stride_in_1x1=stride_in_1x1,
                        dilation=dilation,
                    )
                )
                in_ch = out_ch
            self.add_module(name, nn.Sequential(*blocks))
            self.out_channels[name] = out_ch
            out_ch, mid_ch = out_ch * 2, mid_ch * 2

    def fuse_frozen_bn(self) -> None:
        """Fold every FrozenBatchNorm into its convolution (inference speed; call after loading weights)."""
        for m in self.modules():
            if isinstance(m, ConvNorm):
                m.fuse()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``(N, 3, H, W)`` normalised images -> ``{"res2": (N, C2, H/4, W/4), ..., "res5": (N, C5, H/32, W/32)}``
        (sizes rounded up)."""
        x = self.stem(x)
        out = {}
        for name in self.stage_names:
            x = getattr(self, name)(x)
            out[name] = x
        return out
