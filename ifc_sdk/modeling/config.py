"""Architecture configuration of IFC as a plain dataclass (saved as ``config.json`` beside the weights)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ifc_sdk.errors import ConfigError


@dataclass
class IFCConfig:
    """Every size of the model, plus the input convention the weights were trained with.

    Defaults are the released R50 YouTube-VIS 2019 model (``projects/IFC/configs/base_ytvis.yaml``).
    """

    num_classes: int = 40
    hidden_dim: int = 256
    num_heads: int = 8
    dim_feedforward: int = 2048
    num_enc_layers: int = 3
    num_dec_layers: int = 3
    num_memory_bus: int = 8
    num_queries: int = 100
    dropout: float = 0.1
    mask_groups: int = 32
    # Backbone (detectron2 ResNet).
    depth: int = 50
    stem_channels: int = 64
    res2_channels: int = 256
    bottleneck_channels: int = 64
    num_groups: int = 1
    stride_in_1x1: bool = False
    res5_dilation: int = 1
    # Input convention: channel order the weights expect and per-channel statistics in that order.
    input_format: str = "RGB"
    pixel_mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    categories: list[str] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.input_format not in ("RGB", "BGR"):
            raise ConfigError(f"input_format must be 'RGB' or 'BGR', got {self.input_format!r}")
        if self.hidden_dim % self.num_heads:
            raise ConfigError(f"hidden_dim {self.hidden_dim} is not divisible by num_heads {self.num_heads}")
        if self.categories is not None and len(self.categories) != self.num_classes:
            raise ConfigError(f"{len(self.categories)} category names for {self.num_classes} classes")
        self.pixel_mean = tuple(float(v) for v in self.pixel_mean)
        self.pixel_std = tuple(float(v) for v in self.pixel_std)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> IFCConfig:
        """Build from a dict, refusing unknown keys (a typo must not be ignored silently)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown IFC config keys: {unknown}; known keys: {sorted(known)}")
        return cls(**data)

    def replace(self, **changes) -> IFCConfig:
        return dataclasses.replace(self, **changes)
