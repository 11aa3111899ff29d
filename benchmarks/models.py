"""The benchmarked model: real weights, or seeded random weights calibrated to a trained model's workload.

Speed does not depend on the weights, but the work after the network does (instances per clip, tracks,
outputs), so random weights are calibrated on the row's first window the way the reference fixtures were
made (../shared/fixtures/reference/README.md). The CUDA-only speed options are applied here too.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import ifc_sdk
from benchmarks.hooks import run_window
from ifc_sdk.modeling import ifc_r50, ifc_r101
from ifc_sdk.modeling.backbone import FrozenBatchNorm2d

# --quick: reduced-width models (the backbone's depth and the transformer's layers as they are)
QUICK_OVERRIDES = dict(hidden_dim=64, dim_feedforward=128, num_queries=20, bottleneck_channels=8)


def identity_frozen_bn(model) -> None:
    """Random weights with FrozenBN = identity (mean 0, var 1, weight 1, bias 0): activations stay bounded."""
    for m in model.modules():
        if isinstance(m, FrozenBatchNorm2d):
            m.running_mean.zero_()
            m.running_var.fill_(1.0)
            m.weight.fill_(1.0)
            m.bias.zero_()


@torch.inference_mode()
def calibrate_random_heads(
    model,
    frames: list[np.ndarray],
    size: int | None,
    instances: int,
    logit_std: float = 6.0,
    mask_logit_std: float = 4.0,
) -> dict:
    """Make a random model create about as much downstream work as a trained one, with clear decisions.

    On one clip (``frames``: the row's first window): the class head's last layer is rescaled so class logits
    spread with std ``logit_std`` (peaked class probabilities: a few labels above 0.01 per track) and the
    no-object bias is set so that ``instances`` queries are instances; the dynamic mask weights are
    re-centred over the queries and rescaled so that mask logits have std ``mask_logit_std`` (distinct,
    partly-on masks, so matching decisions are not near-ties). The same recipe as the reference fixtures'
    weights (../shared/fixtures/reference/README.md). Other clips give about as many instances."""
    from ifc_sdk.inference.preprocess import resize_frames, resized_shape, to_tensor

    x = to_tensor(np.stack(frames), model.device)
    if size is not None:
        x = resize_frames(x, resized_shape(*x.shape[-2:], size))
    captured = {}
    cls_last = model.class_embed.layers[-1]
    mask_last = model.mask_head.convert_to_weight.layers[-1]
    hooks = [
        cls_last.register_forward_hook(lambda mod, inp, out: captured.__setitem__("cls", inp[0])),
        mask_last.register_forward_hook(lambda mod, inp, out: captured.__setitem__("mask", inp[0])),
        model.mask_head.out_lay.register_forward_hook(
            lambda mod, inp, out: captured.__setitem__("feats", out)
        ),
    ]
    try:
        run_window(model, x)
    finally:
        for h in hooks:
            h.remove()
    # Dynamic mask weights: w_q = W a_q + b; re-centre over queries (b = -W mean(a)), then scale.
    a = captured["mask"].reshape(-1, captured["mask"].shape[-1]).float()  # (Q, C)
    mask_last.bias.copy_(-(mask_last.weight.float() @ a.mean(0)))
    w = a @ mask_last.weight.float().T + mask_last.bias.float()  # (Q, C)
    feats = captured["feats"].float()  # (T, C, h, w)
    logits = torch.einsum("qc,tchw->qthw", w, feats)
    scale = mask_logit_std / logits.std().clamp_min(1e-12)
    mask_last.weight.mul_(scale)
    mask_last.bias.mul_(scale)
    # Class head.
    h = captured["cls"].reshape(-1, captured["cls"].shape[-1]).float()  # (Q, C)
    raw = h @ cls_last.weight.float().T
    cls_last.weight.mul_(logit_std / raw[:, :-1].std().clamp_min(1e-6))
    cls_last.bias.zero_()
    cls = h @ cls_last.weight.float().T
    margin = (cls[:, :-1].max(-1).values - cls[:, -1]).sort(descending=True).values
    k = min(max(instances, 0), margin.numel())
    if k == 0:
        bias = float(margin[0]) + 1.0
    elif k == margin.numel():
        bias = float(margin[-1]) - 1.0
    else:
        bias = float(margin[k - 1] + margin[k]) / 2
    cls_last.bias[-1] = bias
    return {
        "instances_target": instances,
        "class_logit_std": logit_std,
        "mask_logit_std": mask_logit_std,
        "calibration_frames": len(frames),
    }


def build_model(
    arch: str,
    device: torch.device,
    *,
    seed: int = 0,
    weights: str | None = None,
    calib_frames: list[np.ndarray] | None = None,
    size: int | None = 360,
    instances: int = 10,
    **overrides,
):
    """A full-size IFC: real weights when ``weights`` is given, else seeded random weights (calibrated).
    Returns the model and a description of its weights for the report."""
    info = {"arch": arch}
    if weights:
        model = ifc_sdk.load_model(weights, preset=arch, device=device, **overrides)
        info["weights"] = str(weights)
        return model, info
    torch.manual_seed(seed)
    model = (ifc_r50 if arch == "r50" else ifc_r101)(**overrides)
    identity_frozen_bn(model)
    model = model.to(device).eval()
    info.update(weights=f"random (seed {seed}), FrozenBN identity")
    if calib_frames is not None and instances > 0:
        info.update(calibrate_random_heads(model, calib_frames, size, instances))
    return model, info


def apply_gpu_options(model, args: argparse.Namespace, device: torch.device) -> None:
    """CUDA-only speed options; nothing here ever runs on the CPU (the fp32 CPU path stays the reference's)."""
    if device.type != "cuda":
        if args.compile != "off" or args.channels_last == "on":
            print("note: --compile / --channels-last apply to CUDA only; ignored on", device.type)
        return
    if args.channels_last == "off":
        model.backbone.channels_last = False
    if args.compile != "off":
        model.backbone.fuse_frozen_bn()
        model.backbone.to(
            memory_format=torch.channels_last if args.channels_last != "off" else torch.contiguous_format
        )
        compiled = torch.compile(
            model.backbone, mode=None if args.compile == "default" else args.compile, dynamic=False
        )
        # The segmenter folds FrozenBN at every run; folded once above, keep the compiled graph's buffers.
        compiled.fuse_frozen_bn = lambda: None
        model.backbone = compiled
