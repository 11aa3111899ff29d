"""ifc_sdk: video instance segmentation and tracking with IFC (Inter-Frame Communication Transformers).

>>> import ifc_sdk
>>> model = ifc_sdk.load_model("r50")
>>> result = ifc_sdk.segment_video("clip.mp4", model)
"""

import ifc_sdk.export as export  # a package callable as ifc_sdk.export(model, format=..., out=...)
from ifc_sdk.api import VideoStream, load_model, segment_video
from ifc_sdk.checkpoint import convert_checkpoint, save_pretrained
from ifc_sdk.errors import (
    CheckpointError,
    ConfigError,
    DatasetError,
    EvaluationError,
    IFCError,
    OutputError,
    VideoError,
    WeightsError,
)
from ifc_sdk.inference.predictor import FrameInstances, segment_frames
from ifc_sdk.modeling import IFC, IFCConfig, build_ifc, ifc_r50, ifc_r101
from ifc_sdk.results import Prediction, Track, VideoResult
from ifc_sdk.weights import list_models

__version__ = "0.1.0"

__all__ = [
    "IFC",
    "CheckpointError",
    "ConfigError",
    "DatasetError",
    "EvaluationError",
    "FrameInstances",
    "IFCConfig",
    "IFCError",
    "OutputError",
    "Prediction",
    "Track",
    "VideoError",
    "VideoResult",
    "VideoStream",
    "WeightsError",
    "build_ifc",
    "convert_checkpoint",
    "export",
    "ifc_r50",
    "ifc_r101",
    "list_models",
    "load_model",
    "save_pretrained",
    "segment_frames",
    "segment_video",
]
