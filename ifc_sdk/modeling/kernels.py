"""Which kernels inference runs on a device.

On the CPU ifc_sdk runs the reference's own computation (unfused FrozenBatchNorm, attention with an explicit
softmax, PIL resizing, NCHW convolutions, RLE on the host), which reproduces its fp32 outputs bit for bit.
On accelerators it runs the fast paths instead: FrozenBatchNorm folded into the convolutions, channels_last,
``F.scaled_dot_product_attention``, resizing and mask thresholding/run-finding on the device. Every module
asks `reference_kernels` rather than testing the device itself, so the tests can run the fast paths on the
CPU (by patching this one function) and check them against the exact ones.
"""

from __future__ import annotations

import torch


def reference_kernels(device: torch.device) -> bool:
    """True where the reference's own (bit-exact) kernels run: the CPU. False: the fused fast paths."""
    return device.type == "cpu"
