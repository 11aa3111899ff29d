"""Calibration inputs for int8 quantization, taken from the video domain the model will see.

A few windows of consecutive frames are read from a video (or a frame folder), spread over its length, or from
each video of a folder of videos or frame folders (a dataset's ``JPEGImages``: windows shared out among them);
they are resized exactly as `VideoSegmenter` resizes (short side ``size``) and normalised, in batches of two (as
the segmenter batches them on the CPU) for the frame graph (the one graph quantized, see
`ifc_sdk.export.quantize`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ifc_sdk.errors import ConfigError, VideoError
from ifc_sdk.export.graphs import FrameGraph
from ifc_sdk.inference.preprocess import resize_frames, resized_shape, to_tensor
from ifc_sdk.modeling.ifc import IFC

BATCH = 2


@dataclass
class CalibrationSet:
    """Inputs of the frame graph: ``frame_inputs`` normalised ``(2, 3, H, W)`` batches (the last of a window
    may hold one frame); of the window graph (when asked for): ``window_inputs``, one ``(tokens, bus, pos,
    fpn4, fpn3)`` tuple of T frames per window, computed by the fp32 model; ``info`` says where they came
    from."""

    frame_inputs: list[torch.Tensor]
    info: dict
    window_inputs: list[tuple[torch.Tensor, ...]] = field(default_factory=list)


def _window_starts(length: int | None, window: int, windows: int) -> list[int]:
    """Starts of ``windows`` windows spread evenly over a video of ``length`` frames (None: unknown length,
    windows back to back from the first frame)."""
    if length is None or length < window * windows:
        return [i * window for i in range(windows)]
    step = (length - window) / max(windows - 1, 1)
    return sorted({int(round(i * step)) for i in range(windows)})


def calibration_sources(source: str | os.PathLike) -> list[str | os.PathLike]:
    """The videos of ``source``: itself for a video file or a folder of frames, else (a folder holding no
    frames) its sub-folders and files in name order, each a video or a frame folder."""
    from ifc_sdk.io.video import IMAGE_EXTENSIONS

    folder = Path(source)
    if not folder.is_dir():
        return [source]
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    if not entries or any(p.suffix.lower() in IMAGE_EXTENSIONS for p in entries):
        return [source]
    return entries


def _share(windows: int, sources: int) -> list[int]:
    """``windows`` windows shared out over ``sources`` videos as evenly as possible (the first videos get one
    more; with more videos than windows, evenly spaced videos get one each)."""
    if sources <= windows:
        return [windows // sources + (i < windows % sources) for i in range(sources)]
    picked = {int(i * sources / windows) for i in range(windows)}
    return [int(i in picked) for i in range(sources)]


def read_windows(source: str | os.PathLike, window: int, windows: int) -> list[np.ndarray]:
    """Up to ``windows`` windows of ``window`` consecutive uint8 ``(H, W, 3)`` frames of ``source``."""
    from ifc_sdk.io.video import open_video

    with open_video(source) as reader:
        starts = _window_starts(reader.num_frames_hint, window, windows)
        wanted = {s + i: k for k, s in enumerate(starts) for i in range(window)}
        last = max(wanted)
        clips: dict[int, list[np.ndarray]] = {}
        for frame in reader:
            if frame.index in wanted:
                clips.setdefault(wanted[frame.index], []).append(frame.image)
            if frame.index >= last:
                break
    out = [np.stack(c) for _, c in sorted(clips.items()) if len(c) == window]
    if not out:
        raise VideoError(source, f"calibration needs at least {window} frames (one window), found fewer")
    return out


@torch.inference_mode()
def calibration_set(
    model: IFC,
    source: str | os.PathLike,
    *,
    size: int = 360,
    window: int = 5,
    windows: int = 6,
    window_states: bool = False,
) -> CalibrationSet:
    """Calibration inputs from ``source`` (video file, frame folder, or a folder of either: see
    `calibration_sources`) for ``model`` (a CPU fp32 eval `IFC`): ``windows`` windows of ``window`` frames
    resized to short side ``size``; ``window_states``: also the window graph's inputs of each window."""
    if window < 1 or windows < 1:
        raise ConfigError(f"calibration needs window >= 1 and windows >= 1, got {window} and {windows}")
    sources = calibration_sources(source)
    shares = _share(windows, len(sources))
    clips = [
        clip for video, count in zip(sources, shares) if count for clip in read_windows(video, window, count)
    ]
    frame_inputs, window_inputs = [], []
    frame_graph = FrameGraph(model)
    for clip in clips:
        x = to_tensor(clip, "cpu")
        x = model.normalize(resize_frames(x, resized_shape(*x.shape[-2:], size)))  # (T, 3, H, W)
        batches = [x[i : i + BATCH] for i in range(0, len(x), BATCH)]
        frame_inputs += batches
        if window_states:  # the frame graph's outputs, eager, concatenated over the window
            parts = [frame_graph(batch) for batch in batches]  # each (tokens, bus, pos, fpn4, fpn3)
            window_inputs.append(tuple(torch.cat(states) for states in zip(*parts)))
    h, w = frame_inputs[0].shape[-2:]
    info = {
        "source": os.fspath(source),
        "videos": sum(1 for n in shares if n),
        "windows": len(clips),
        "window": window,
        "frames": len(clips) * window,
        "size": [int(h), int(w)],
    }
    return CalibrationSet(frame_inputs, info, window_inputs)
