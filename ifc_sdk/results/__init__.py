"""Result types of video inference.

A `VideoResult` holds `Track`s whose masks are COCO RLE per frame (`masks`); `VideoResult.frames` gives the
same instances frame by frame as `FrameInstances`, the type streamed frames have too. Modules: ``masks``
(RLE encoding, boxes), ``track`` (`Track`, `Prediction`), ``frames`` (`FrameInstances`, the per-frame view),
``result`` (`VideoResult`, its `FrameView`), ``serialize`` (dict / JSON / pandas), ``plot`` (drawing a
frame), ``overlay`` (encoding the drawn frames into a video).
"""

from ifc_sdk.results.frames import FrameInstances, FrameKeeper, frame_instances
from ifc_sdk.results.masks import RLE, decode_masks, empty_rle, encode_masks
from ifc_sdk.results.result import FrameView, VideoResult
from ifc_sdk.results.track import Prediction, Track, TrackSummary, track_summaries

__all__ = [
    "RLE",
    "FrameInstances",
    "FrameKeeper",
    "FrameView",
    "Prediction",
    "Track",
    "TrackSummary",
    "VideoResult",
    "decode_masks",
    "empty_rle",
    "encode_masks",
    "frame_instances",
    "track_summaries",
]
