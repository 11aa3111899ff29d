"""Each backend's graphs take any frame count, window length and frame size, and agree with eager PyTorch.

The graphs are traced on 2 frames of 160x224 and a window of 2; here they run on two other sizes (neither a
multiple of 32 nor of 8), frame batches of 1 and 3, and windows of 1 and 3 frames.
"""

from __future__ import annotations

import math

import pytest
import torch
from exports import FORMATS, exported
from reference import model

import ifc_sdk
from ifc_sdk.inference.clip_model import EagerClipModel

SIZES = [(100, 150), (72, 97)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_any_size_and_window_length(fmt):
    runtime = ifc_sdk.load_model(exported("r50_seed0", fmt))
    eager = EagerClipModel(model("r50_seed0"))
    q, k = runtime.config.num_queries, runtime.config.num_classes + 1
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for h, w in SIZES:
            images = torch.randint(0, 256, (4, 3, h, w), dtype=torch.uint8, generator=generator)
            for n in (1, 3):
                got, want = runtime.frame_states(images[:n]), eager.frame_states(images[:n])
                assert {k_: v.shape for k_, v in got.items()} == {k_: v.shape for k_, v in want.items()}
                for name in want:
                    torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-4)
            states = eager.frame_states(images[:3])
            for t in (1, 3):
                window = {name: v[:t].contiguous() for name, v in states.items()}
                logits, masks = runtime.window_heads(window, t)
                ref_logits, ref_masks = eager.window_heads(window, t)
                assert logits.shape == (q, k)
                assert masks.shape == (q, t, math.ceil(h / 8), math.ceil(w / 8))
                torch.testing.assert_close(logits, ref_logits, rtol=1e-4, atol=1e-3)
                torch.testing.assert_close(masks, ref_masks, rtol=1e-4, atol=1e-3)
