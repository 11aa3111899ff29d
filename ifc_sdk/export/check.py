"""The check run right after exporting: exported graphs against the eager model on a built-in clip.

The clip is the first frames of the bundled example video (``ifc_sdk/assets/shapes_example.mp4``, 160x224):
each frame state, the class probabilities and the mask logits of one window are compared with eager PyTorch
(the CPU's reference kernels), and the largest differences are reported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ifc_sdk.export.graphs import STATE_NAMES
from ifc_sdk.export.runtime import RuntimeClipModel
from ifc_sdk.modeling.ifc import IFC

CHECK_CLIP = Path(__file__).resolve().parents[1] / "assets" / "shapes_example.mp4"
CHECK_FRAMES = 4
BATCH = 2  # frames per frame-graph call, as `VideoSegmenter` batches on the CPU


def check_frames(num_frames: int = CHECK_FRAMES) -> torch.Tensor:
    """The first ``num_frames`` frames of the bundled example as uint8 ``(T, 3, H, W)`` RGB."""
    from ifc_sdk.io.video import open_video

    frames = []
    with open_video(CHECK_CLIP) as reader:
        for frame in reader:
            frames.append(frame.image)
            if len(frames) == num_frames:
                break
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()


def _batched_states(frame_states, images: torch.Tensor) -> dict[str, torch.Tensor]:
    parts = [frame_states(images[i : i + BATCH]) for i in range(0, len(images), BATCH)]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


@torch.inference_mode()
def compare_with_eager(model: IFC, runtime: RuntimeClipModel, images: torch.Tensor | None = None) -> dict:
    """Run ``images`` (default: `check_frames`) through ``model`` (eager; a CPU fp32 eval model) and ``runtime``
    as one window; returns the largest absolute differences per output, the largest class-probability difference
    and the share of mask logits whose sign (the mask decision) differs."""
    images = check_frames() if images is None else images

    def eager_states(x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = model.backbone_features(model.normalize(x))
        return model.frame_states(feats["res3"], feats["res4"], feats["res5"])

    ref_states = _batched_states(eager_states, images)
    states = _batched_states(runtime.frame_states, images)
    h16, w16 = ref_states["fpn4"].shape[-2:]
    ref = model.forward_frame_states(ref_states, len(images), ((h16 + 1) // 2, (w16 + 1) // 2))
    ref_logits, ref_masks = ref["pred_logits"][0], ref["pred_masks"][0]
    logits, masks = runtime.window_heads(states, len(images))
    diffs = {k: float((states[k].float() - ref_states[k]).abs().max()) for k in STATE_NAMES}
    diffs["pred_logits"] = float((logits.float() - ref_logits).abs().max())
    diffs["pred_masks"] = float((masks.float() - ref_masks).abs().max())
    probs = (logits.float().softmax(-1) - ref_logits.softmax(-1)).abs().max()
    flipped = ((masks > 0) != (ref_masks > 0)).float().mean()
    return {
        "clip": f"{CHECK_CLIP.name}, first {len(images)} frames, {images.shape[-2]}x{images.shape[-1]}",
        "max_abs_diff": diffs,
        "max_class_prob_diff": float(probs),
        "mask_sign_flipped": float(flipped),
    }


def format_check(check: dict) -> str:
    """The check's result as the lines the CLI prints."""
    diffs = check["max_abs_diff"]
    states = ", ".join(f"{k} {diffs[k]:.2e}" for k in STATE_NAMES)
    return (
        f"check against eager on {check['clip']}:\n"
        f"  largest |exported - eager|: frame states {states}\n"
        f"  class logits {diffs['pred_logits']:.2e}, class probabilities {check['max_class_prob_diff']:.2e}, "
        f"mask logits {diffs['pred_masks']:.2e}; mask pixels decided differently: "
        f"{100 * check['mask_sign_flipped']:.3f}%"
    )
