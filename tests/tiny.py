"""A tiny randomly initialised IFC for fast tests of shapes, plumbing and edge cases."""

from __future__ import annotations

import torch

from ifc_sdk.modeling import IFC, build_ifc, preset_config


def tiny_model(seed: int = 0, **overrides) -> IFC:
    torch.manual_seed(seed)
    sizes = dict(
        hidden_dim=32,
        dim_feedforward=32,
        num_queries=6,
        stem_channels=8,
        res2_channels=16,
        bottleneck_channels=4,
        mask_groups=4,
    )
    return build_ifc(preset_config("demo", **{**sizes, **overrides})).eval()
