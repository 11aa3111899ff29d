"""``mask_position`` models (the shapes demo) export with dynamic frame sizes.

The location prior's pixel grid is computed inside the window graph from the size of the features, so each
backend must follow the frame size it is given rather than the size it was traced at; the decoder's value
positions are part of the same graph.
"""

from __future__ import annotations

import pytest
import torch
from exports import FORMATS
from tiny import tiny_model

import ifc_sdk
from ifc_sdk.export import export
from ifc_sdk.inference.clip_model import EagerClipModel


@pytest.fixture(scope="module")
def model():
    m = tiny_model(mask_position=True)
    torch.manual_seed(3)
    with torch.no_grad():  # trained, the centres and strengths differ per query
        m.mask_head.locate.layers[-1].weight.normal_(std=0.5)
        m.mask_head.locate.layers[-1].bias.normal_(std=0.5)
        for layer in m.transformer.clip_decoder.layers:
            layer.value_pos.weight.normal_(std=0.2)
    return m


@pytest.mark.parametrize("fmt", FORMATS)
def test_window_graph_follows_the_frame_size(fmt, model, tmp_path):
    export(model, format=fmt, out=tmp_path / fmt, check=False)
    runtime = ifc_sdk.load_model(tmp_path / fmt)
    assert runtime.config.mask_position is True
    eager = EagerClipModel(model)
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for h, w in [(100, 150), (72, 97)]:
            images = torch.randint(0, 256, (3, 3, h, w), dtype=torch.uint8, generator=generator)
            states = eager.frame_states(images)
            logits, masks = runtime.window_heads(states, 3)
            ref_logits, ref_masks = eager.window_heads(states, 3)
            torch.testing.assert_close(logits, ref_logits, rtol=1e-4, atol=1e-3)
            torch.testing.assert_close(masks, ref_masks, rtol=1e-4, atol=1e-3)
