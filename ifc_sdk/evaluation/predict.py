"""Run a model over every video of a YouTube-VIS split and write a results file ready for the server.

`predict_dataset` segments each video of a split (frames listed by the JSON's ``file_names``, masks at the
JSON's ``height`` x ``width``) and writes ``results.json`` (YouTube-VIS results: one entry per track and class
above a threshold, as the reference's evaluation with ``MULTI_CLS_ON``) plus ``<stem>.zip`` holding it as
``results.json``, the evaluation server's submission format.

Each finished video is written atomically to ``<out>.parts/<video_id>.json`` with the settings that made it;
a rerun skips the videos already done with the same settings, so an interrupted run resumes where it stopped.
The parts are merged in the dataset's video order at the end. Only these files are written (anything else in
the folders stays), the output paths are checked before any video is processed (a folder where ``out`` or the
zip should go, a file where ``<out>.parts`` should be: `OutputError`), and the temporary files a killed run
left (``.<name>.tmp-*``) are swept when the next run starts.

Under ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set) each process joins the process group (NCCL on
CUDA, gloo on the CPU), takes the videos at positions ``i % world_size == rank`` on ``cuda:LOCAL_RANK`` (when
CUDA is there) and rank 0 merges once all are done. Videos are independent, so the merged file equals the one
of a single process.

Dataset layouts, for ``data`` = ``DIR``:

=========================  ==========================================  ====================================
layout                     annotations                                 frames
=========================  ==========================================  ====================================
YouTube-VIS 2019           ``DIR/<split>.json``                        ``DIR/<split>/JPEGImages/<video>/``
YouTube-VIS 2021           ``DIR/<split>/instances.json``              ``DIR/<split>/JPEGImages/<video>/``
synthetic / own (no split) ``DIR/annotations.json``                    ``DIR/JPEGImages/<video>/``
=========================  ==========================================  ====================================

``data`` may also be the annotation JSON itself (frames then found as `YTVISDataset.from_json` does).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import sys
import zipfile
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ifc_sdk.api import inference_defaults
from ifc_sdk.data.ytvis import VideoRecord, YTVISDataset
from ifc_sdk.errors import ConfigError, DatasetError, IFCError
from ifc_sdk.io.atomic import (
    atomic_path,
    atomic_write_text,
    ensure_dir,
    ensure_file_target,
    sweep_temporaries,
)
from ifc_sdk.io.export import save_ytvis_json, to_ytvis_results
from ifc_sdk.modeling.ifc import IFC

__all__ = ["predict_dataset", "resolve_split"]

PREFETCH = 4  # frames decoded ahead of the model (one background thread)
PROCESS_GROUP_TIMEOUT = datetime.timedelta(hours=12)  # ranks wait for the slowest shard at the barrier


def resolve_split(data: str | os.PathLike, split: str | None = None) -> tuple[Path, Path | None]:
    """The annotation JSON and frame root of ``split`` under ``data`` (see the module docstring)."""
    data = Path(data)
    if data.is_file():
        if split is not None:
            raise ConfigError(
                f"--data {data} is an annotation file; a split only applies to a dataset folder"
            )
        return data, None
    if not data.is_dir():
        raise DatasetError(f"{data}: no such dataset folder")
    if split is None:
        candidates = [(data / "annotations.json", data)]
    else:
        candidates = [(data / f"{split}.json", data / split), (data / split / "instances.json", data / split)]
    for json_path, root in candidates:
        if json_path.is_file():
            return json_path, root
    tried = ", ".join(str(j) for j, _ in candidates)
    found = sorted(p.name for p in data.glob("*.json")) + sorted(
        p.parent.name for p in data.glob("*/instances.json")
    )
    hint = f"; splits found: {', '.join(found)} (pass --split)" if found and split is None else ""
    raise DatasetError(f"{data}: no annotation file for split {split!r} (tried {tried}){hint}")


# ----------------------------------------------------------------------------------------------- processes


def _setup_processes(device: str | torch.device | None) -> tuple[int, int, int, torch.device, bool]:
    """``(rank, world_size, local_rank, device, owns_group)``; joins the torchrun process group if any."""
    from ifc_sdk.api import resolve_device

    initialized = dist.is_available() and dist.is_initialized()
    world = dist.get_world_size() if initialized else int(os.environ.get("WORLD_SIZE", "1"))
    rank = dist.get_rank() if initialized else int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None and torch.cuda.is_available():
        device = "cuda"
    device = resolve_device(device if device is not None else "cpu")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
    if device.type == "cuda":
        torch.cuda.set_device(device)
    owns = False
    if world > 1 and not initialized:
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=PROCESS_GROUP_TIMEOUT)
        owns = True
    return rank, world, local_rank, device, owns


def _barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


# ----------------------------------------------------------------------------------------------- videos


def _frames(video: VideoRecord) -> Iterator[np.ndarray]:
    """The video's frames as uint8 RGB, decoded by one background thread at most `PREFETCH` frames ahead."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ifc-frames") as pool:
        pending: deque = deque()
        queued = 0
        try:
            for _ in range(len(video)):
                while queued < len(video) and len(pending) < PREFETCH:
                    pending.append(pool.submit(video.read_frame, queued))
                    queued += 1
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _predict_video(model: IFC, video: VideoRecord, settings: dict, category_ids) -> list[dict]:
    from ifc_sdk.inference.predictor import VideoSegmenter, collect

    segmenter = VideoSegmenter(
        model,
        window=settings["window"],
        stride=settings["stride"],
        size=settings["size"] or None,
        output_size=(video.height, video.width),
        precision=settings["precision"],
        mask_resize=settings["mask_resize"],
    )
    result = collect(segmenter, segmenter.run(_frames(video)))
    return to_ytvis_results(
        result,
        video.id,
        multi_class=settings["multi_class"],
        threshold=settings["threshold"],
        category_ids=category_ids,
    )


def _read_part(path: Path) -> dict | None:
    try:
        part = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return part if isinstance(part, dict) and isinstance(part.get("results"), list) else None


def _category_ids(dataset: YTVISDataset, model, warn: bool) -> list[int] | None:
    """Dataset category ids by 0-based label when the dataset has the model's number of classes (``model``: an
    `IFC` or an exported model's `ClipModel`; both carry their config)."""
    ids = sorted(c.id for c in dataset.categories)
    num_classes = model.config.num_classes
    if len(ids) == num_classes:
        return ids
    if ids and warn:
        print(
            f"predict-dataset: warning: the dataset has {len(ids)} categories, the model {num_classes}; "
            "writing category_id = label + 1",
            file=sys.stderr,
        )
    return None


def _model_key(model) -> str:
    if isinstance(model, IFC):
        return "<IFC object>"
    path = Path(model)
    return str(path.resolve()) if path.exists() else str(model)


def _prepare_outputs(out: Path) -> Path:
    """Check ``out``, its zip and ``<out>.parts`` can be written (before any work) and create the folders;
    returns the parts folder."""
    ensure_file_target(out, "results file")
    ensure_file_target(out.with_suffix(".zip"), "submission zip")
    ensure_dir(out.parent, "folder of the results file")
    return ensure_dir(Path(f"{out}.parts"), "parts folder")


def _sweep(out: Path, parts: Path) -> None:
    """Remove the temporary files a killed run left beside ``out`` and in ``parts``."""
    sweep_temporaries(parts, r"[^/]+\.json")
    sweep_temporaries(out.parent, f"{re.escape(out.name)}|{re.escape(out.with_suffix('.zip').name)}")


def _write_zip(results: Path, zip_path: Path) -> None:
    with atomic_path(zip_path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(results, arcname="results.json")


# ----------------------------------------------------------------------------------------------- the API


def predict_dataset(
    data: str | os.PathLike,
    out: str | os.PathLike = "results.json",
    *,
    split: str | None = None,
    model: str | os.PathLike | IFC = "r50",
    window: int | None = None,
    stride: int | None = None,
    size: int | None = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    mask_resize: str = "reference",
    limit: int | None = None,
    resume: bool = True,
    multi_class: bool = True,
    threshold: float = 0.01,
    progress: bool = True,
) -> Path:
    """Segment every video of a split and write YouTube-VIS ``out`` (results JSON) and ``<out stem>.zip``.

    Args:
        data: dataset folder (layouts in the module docstring) or an annotation JSON.
        out: the results JSON; per-video parts go to ``<out>.parts/``, the submission zip beside ``out``.
        split: e.g. ``"valid"``; None reads ``data/annotations.json``.
        model: a loaded `IFC` or a name/path for `load_model`.
        window, stride, size: windowing and input short side (0 keeps the frames' size); None takes the
            model's recommended setting (`inference_defaults`).
        device: default ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU.
        precision: "fp32", "bf16" or "fp16".
        mask_resize: "reference" or "aligned" (see `ifc_sdk.inference.predictor.VideoSegmenter`).
        limit: only the first ``limit`` videos of the split.
        resume: skip videos whose part was written with the same settings by an earlier run (a model given
            as a loaded `IFC` is not fingerprinted: pass ``resume=False`` after changing its weights).
        multi_class: one entry per (track, class) above ``threshold`` (the reference's evaluation); otherwise
            each track's top class only.
        threshold: class probability a prediction must exceed.
        progress: a tqdm bar over videos (rank 0).

    Returns:
        The path of the results JSON (written by rank 0; every rank returns once it exists).
    """
    from ifc_sdk.api import load_model
    from ifc_sdk.inference.predictor import PRECISIONS, check_mask_resize, check_window

    out = Path(out)
    if out.suffix.lower() == ".zip":
        raise ConfigError(f"--out {out} names the results JSON; the zip is written beside it")
    defaults = inference_defaults(model)
    settings = {
        "window": defaults["window"] if window is None else window,
        "stride": defaults["stride"] if stride is None else stride,
        "size": defaults["size"] if size is None else size,
        "precision": precision,
        "mask_resize": check_mask_resize(mask_resize),
        "multi_class": bool(multi_class),
        "threshold": float(threshold),
    }
    check_window(settings["window"], settings["stride"])
    if not isinstance(settings["size"], int) or settings["size"] < 0:
        raise ConfigError(f"size must be a short side in pixels (0 keeps the frames' size), got {size!r}")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be a positive number of videos, got {limit!r}")
    json_path, root = resolve_split(data, split)
    dataset = YTVISDataset.from_json(json_path, root)
    videos = dataset.videos[:limit] if limit is not None else dataset.videos
    settings["model"] = _model_key(model)
    settings["annotations"] = str(json_path.resolve())
    parts = _prepare_outputs(out)

    rank, world, local_rank, device, owns_group = _setup_processes(device)
    try:
        if rank == 0:
            _sweep(out, parts)
        if isinstance(model, IFC):
            net = model.to(device).eval()
        else:  # one process per machine loads (and downloads) first, so the others find the cache filled
            if world > 1 and local_rank != 0:
                _barrier(world)
            net = load_model(model, device=device)
            if world > 1 and local_rank == 0:
                _barrier(world)
        category_ids = _category_ids(dataset, net, warn=rank == 0)
        _barrier(world)  # the sweep is done before any process writes a part

        shard = [v for i, v in enumerate(videos) if i % world == rank]
        todo = [v for v in shard if not (resume and _is_done(parts / f"{v.id}.json", settings))]
        show = progress and rank == 0
        if show and len(todo) < len(shard):
            print(
                f"predict-dataset: {len(shard) - len(todo)} of {len(shard)} videos already done in {parts}, "
                "resuming",
                file=sys.stderr,
            )
        from tqdm.auto import tqdm

        with tqdm(total=len(todo), unit="video", desc="predict", disable=not show, dynamic_ncols=True) as bar:
            for video in todo:
                bar.set_postfix_str(video.name, refresh=False)
                entries = _predict_video(net, video, settings, category_ids)
                part = {"video_id": video.id, "settings": settings, "results": entries}
                atomic_write_text(parts / f"{video.id}.json", json.dumps(part, separators=(",", ":")))
                bar.update(1)

        _barrier(world)
        if rank == 0:
            merged: list[dict] = []
            for video in videos:
                part = _read_part(parts / f"{video.id}.json")
                if part is None or part.get("settings") != settings:
                    raise IFCError(
                        f"{parts / f'{video.id}.json'}: missing or made with other settings after all "
                        "processes finished (was it removed meanwhile?)"
                    )
                merged.extend(part["results"])
            save_ytvis_json(merged, out)
            _write_zip(out, out.with_suffix(".zip"))
        _barrier(world)
    finally:
        if owns_group and dist.is_initialized():
            dist.destroy_process_group()
    return out


def _is_done(path: Path, settings: dict) -> bool:
    part = _read_part(path) if path.is_file() else None
    return part is not None and part.get("settings") == settings
