"""Builders: one private assembly function and small public presets over it."""

from __future__ import annotations

from ifc_sdk.errors import ConfigError
from ifc_sdk.modeling.backbone import ResNet
from ifc_sdk.modeling.config import IFCConfig
from ifc_sdk.modeling.ifc import IFC
from ifc_sdk.modeling.mask_head import MaskHead
from ifc_sdk.modeling.transformer import IFCTransformer

# What the weights cannot tell: input convention and where the stride sits. Sizes default to the releases.
PRESETS: dict[str, IFCConfig] = {
    # projects/IFC/configs/base_ytvis.yaml: torchvision-style R50, RGB input.
    "r50": IFCConfig(),
    # projects/IFC/configs/R101_ytvis.yaml: MSRA R101 (stride in 1x1), BGR input, caffe statistics.
    "r101": IFCConfig(
        depth=101,
        stride_in_1x1=True,
        input_format="BGR",
        pixel_mean=(103.53, 116.28, 123.675),
        pixel_std=(1.0, 1.0, 1.0),
    ),
    # The small model trained on the synthetic shapes world (see examples/train_demo.py).
    "demo": IFCConfig(
        num_classes=5,
        hidden_dim=64,
        num_heads=4,
        dim_feedforward=128,
        num_queries=10,
        stem_channels=16,
        res2_channels=64,
        bottleneck_channels=16,
        mask_groups=8,
    ),
}


def preset_config(name: str, **overrides) -> IFCConfig:
    """The `IFCConfig` of preset ``name`` ("r50", "r101", "demo") with ``overrides`` applied."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name].replace(**overrides)


def build_ifc(config: IFCConfig) -> IFC:
    """Assemble an `IFC` from a config (weights randomly initialised)."""
    backbone = ResNet(
        config.depth,
        stem_channels=config.stem_channels,
        res2_channels=config.res2_channels,
        bottleneck_channels=config.bottleneck_channels,
        num_groups=config.num_groups,
        stride_in_1x1=config.stride_in_1x1,
        res5_dilation=config.res5_dilation,
    )
    transformer = IFCTransformer(
        config.hidden_dim,
        config.num_heads,
        config.dim_feedforward,
        config.num_enc_layers,
        config.num_dec_layers,
        config.num_memory_bus,
        config.dropout,
    )
    mask_head = MaskHead(
        config.hidden_dim, (backbone.out_channels["res4"], backbone.out_channels["res3"]), config.mask_groups
    )
    return IFC(
        backbone,
        transformer,
        mask_head,
        num_classes=config.num_classes,
        num_queries=config.num_queries,
        config=config,
    )


def ifc_r50(**overrides) -> IFC:
    """IFC with the released ResNet-50 architecture (RGB input); keyword arguments override config fields."""
    return build_ifc(preset_config("r50", **overrides))


def ifc_r101(**overrides) -> IFC:
    """IFC with the released ResNet-101 architecture (BGR input, stride in 1x1)."""
    return build_ifc(preset_config("r101", **overrides))


def ifc_demo(**overrides) -> IFC:
    """The small IFC used by the bundled shapes demo model."""
    return build_ifc(preset_config("demo", **overrides))
