"""IFC in plain PyTorch: one module per architectural part, assembled by `build_ifc`."""

from ifc_sdk.modeling.build import PRESETS, build_ifc, ifc_demo, ifc_r50, ifc_r101, preset_config
from ifc_sdk.modeling.config import IFCConfig
from ifc_sdk.modeling.ifc import IFC

__all__ = ["IFC", "IFCConfig", "PRESETS", "build_ifc", "ifc_demo", "ifc_r50", "ifc_r101", "preset_config"]
