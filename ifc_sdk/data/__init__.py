"""Datasets (YouTube-VIS, COCO), training augmentations and the synthetic shapes generator."""

from ifc_sdk.data.coco import COCODataset
from ifc_sdk.data.synthetic import generate_dataset, render_video
from ifc_sdk.data.transforms import COCOClipMapper, YTVISClipMapper
from ifc_sdk.data.ytvis import InstanceTrack, VideoRecord, YTVISDataset

__all__ = [
    "COCOClipMapper",
    "COCODataset",
    "InstanceTrack",
    "VideoRecord",
    "YTVISClipMapper",
    "YTVISDataset",
    "generate_dataset",
    "render_video",
]
