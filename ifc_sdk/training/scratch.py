"""Training a FrozenBN backbone from scratch: data-dependent initialisation of the frozen statistics.

The reference always starts from ImageNet weights, whose batch-norm statistics are frozen (``FrozenBN``). A
backbone trained from random weights (the bundled demo model, for which no pre-trained weights exist) would have
identity "normalisations": an un-normalised 50-layer ResNet, which trains slowly. `calibrate_frozen_bn` sets
each FrozenBN from the statistics of its input on one batch, in network order (LSUV-style), so every
convolution's output starts standardised; the last normalisation of each residual branch gets a small scale
(``residual_scale``) so the sum over blocks stays well-conditioned. The statistics then stay frozen, as in the
reference.
"""

from __future__ import annotations

import torch

from ifc_sdk.modeling.backbone import FrozenBatchNorm2d, ResNet


@torch.no_grad()
def calibrate_frozen_bn(backbone: ResNet, images: torch.Tensor, residual_scale: float = 0.2) -> int:
    """Set every FrozenBN of ``backbone`` from a forward pass over ``images`` (float ``(N, 3, H, W)``,
    normalised): ``running_mean``/``running_var`` = the per-channel mean/variance of its input, ``bias`` = 0,
    ``weight`` = ``residual_scale`` for the ``conv3`` of each bottleneck and 1 elsewhere. Returns the number of
    normalisations set."""
    hooks = []

    def calibrate(module: FrozenBatchNorm2d, args, scale: float) -> None:
        x = args[0].float()
        module.running_mean.copy_(x.mean(dim=(0, 2, 3)))
        module.running_var.copy_(x.var(dim=(0, 2, 3), unbiased=False).clamp_min(1e-6))
        module.weight.fill_(scale)
        module.bias.zero_()

    for name, module in backbone.named_modules():
        if isinstance(module, FrozenBatchNorm2d):
            scale = residual_scale if name.endswith("conv3.norm") else 1.0
            hooks.append(
                module.register_forward_pre_hook(lambda m, args, scale=scale: calibrate(m, args, scale))
            )
    try:
        backbone(images)
    finally:
        for h in hooks:
            h.remove()
    return len(hooks)
