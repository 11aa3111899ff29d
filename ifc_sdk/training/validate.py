"""Evaluation during training: segment the videos of a YouTube-VIS split and score them with
`ifc_sdk.evaluation.evaluate_ytvis` (the official video AP/AR)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ifc_sdk.data.ytvis import YTVISDataset
from ifc_sdk.evaluation.ytvis import evaluate_ytvis
from ifc_sdk.inference.predictor import segment_frames
from ifc_sdk.io.export import to_ytvis_results
from ifc_sdk.modeling.backbone import ConvNorm
from ifc_sdk.modeling.ifc import IFC


def _clear_fused(model: IFC) -> None:
    """Drop the folded FrozenBN weights inference computed (they go stale when training changes the convs)."""
    for m in model.modules():
        if isinstance(m, ConvNorm):
            m.fused_weight = None
            m.fused_bias = None


@torch.no_grad()
def predict_ytvis(
    model: IFC,
    dataset: YTVISDataset,
    *,
    window: int,
    stride: int = 1,
    size: int | None = 360,
    category_ids: Sequence[int] | None = None,
    max_videos: int | None = None,
    progress: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """YouTube-VIS result entries of the first ``max_videos`` videos of ``dataset`` (all by default).

    The model is put in eval mode and restored to its previous mode afterwards; ``category_ids`` maps the
    model's 0-based labels to the dataset's category ids (default: the dataset's ids in ascending order).
    """
    was_training = model.training
    model.eval()
    if category_ids is None:
        category_ids = sorted(c.id for c in dataset.categories)
    entries: list[dict[str, Any]] = []
    try:
        for video in list(dataset)[:max_videos]:
            frames = np.stack([video.read_frame(i) for i in range(len(video))])
            result = segment_frames(model, frames, window=window, stride=stride, size=size)
            entries.extend(to_ytvis_results(result, video.id, category_ids=list(category_ids)))
            if progress is not None:
                progress()
    finally:
        _clear_fused(model)
        model.train(was_training)
    return entries


def ground_truth_subset(dataset: YTVISDataset, max_videos: int | None) -> dict[str, Any] | str:
    """The ground truth of the first ``max_videos`` videos (the JSON path when all are used)."""
    if max_videos is None or max_videos >= len(dataset):
        return str(dataset.json_path)
    data = json.loads(dataset.json_path.read_text())
    keep = {v.id for v in list(dataset)[:max_videos]}
    return {
        **data,
        "videos": [v for v in data["videos"] if int(v["id"]) in keep],
        "annotations": [a for a in data.get("annotations") or [] if int(a["video_id"]) in keep],
    }


def evaluate_model(
    model: IFC,
    dataset: YTVISDataset,
    *,
    window: int,
    stride: int = 1,
    size: int | None = 360,
    category_ids: Sequence[int] | None = None,
    max_videos: int | None = None,
    progress: Callable[[], None] | None = None,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Segment ``dataset``'s videos and return ``(the 12 official stats, the result entries)``."""
    entries = predict_ytvis(
        model,
        dataset,
        window=window,
        stride=stride,
        size=size,
        category_ids=category_ids,
        max_videos=max_videos,
        progress=progress,
    )
    return evaluate_ytvis(ground_truth_subset(dataset, max_videos), entries), entries
