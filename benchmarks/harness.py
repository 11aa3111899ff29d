"""One timed run of each side, ifc_sdk and the reference-style baseline, with its peak memory.

Time is the wall clock of the whole call (the device synchronised before stopping) plus the process CPU time
(user + sys), less sensitive to other jobs on a shared machine. Peak memory is the peak RSS (``VmHWM``, reset
before each run after giving freed heap back to the OS) and, on CUDA, ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import resource
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

import ifc_sdk
from benchmarks import hooks
from benchmarks.reference_style import StageTimer, TooManyTracksError, run_reference_style
from benchmarks.rows import Row
from benchmarks.videos import decode_all
from ifc_sdk.inference.predictor import VideoSegmenter, collect
from ifc_sdk.io.video import open_video

STAGES = ("decode", "preprocess", "backbone", "heads", "stitching", "output", "other")

_LIBC = None


def _trim() -> None:
    """Give freed heap memory back to the OS so the next run's peak RSS starts from what is really in use."""
    global _LIBC
    with contextlib.suppress(OSError, AttributeError):
        _LIBC = _LIBC or ctypes.CDLL("libc.so.6")
        _LIBC.malloc_trim(0)


def reset_peak_memory(device: torch.device) -> None:
    """Start a run's peak-memory counters from the memory in use now."""
    gc.collect()
    _trim()
    with contextlib.suppress(OSError):  # Linux: "5" resets VmHWM (peak RSS) to the current RSS
        Path("/proc/self/clear_refs").write_text("5")
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> dict:
    """``peak_rss_gb`` since the last reset (and ``peak_cuda_gb`` on CUDA)."""
    out = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                out["peak_rss_gb"] = round(int(line.split()[1]) / 2**20, 3)
    if device.type == "cuda":
        out["peak_cuda_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_seconds() -> float:
    """CPU time of this process (all threads: torch's, a runtime's, the decoder's), user + system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class RunResult:
    """One timed run: wall seconds, the side's output, peak memory, per-stage seconds, CPU seconds."""

    seconds: float
    output: object
    memory: dict
    stages: dict | None = None
    cpu_seconds: float = 0.0


def run_ours(
    model,
    source,
    row: Row,
    *,
    size: int | None,
    precision: str,
    instrument: bool = False,
    variant: str = "sdk",
) -> RunResult:
    """ifc_sdk: ``segment_video`` on an mp4 path (end-to-end) or `VideoSegmenter` on decoded frames;
    ``instrument`` times each stage, ``variant`` emulates an earlier step of the speed work (`hooks`)."""
    device = model.device
    reset_peak_memory(device)
    timer = StageTimer(device) if instrument else None
    start, cpu0 = time.perf_counter(), cpu_seconds()
    with hooks.variant(model, variant, row) as (kwargs, adjust):
        if isinstance(source, Path) and not instrument and variant == "sdk":
            result = ifc_sdk.segment_video(
                source,
                model,
                window=row.window,
                stride=row.stride,
                size=size,
                precision=precision,
                progress=False,
            )
        else:  # what segment_video does, with hooks
            segmenter = VideoSegmenter(
                model, window=row.window, stride=row.stride, size=size, precision=precision, **kwargs
            )
            adjust(segmenter)
            reader = open_video(source) if isinstance(source, Path) else None
            frames = ((f.image, f.timestamp) for f in reader) if reader is not None else iter(source)
            try:
                if instrument:
                    with hooks.instrumented(segmenter, timer):
                        result = collect(segmenter, segmenter.run(hooks.timed_iter(frames, timer, "decode")))
                else:
                    result = collect(segmenter, segmenter.run(frames))
            finally:
                if reader is not None:
                    reader.close()
        _sync(device)
    seconds = time.perf_counter() - start
    stages = None
    if timer is not None:
        stages = dict(timer.seconds)
        stages["other"] = max(0.0, seconds - timer.total())
    return RunResult(seconds, result, peak_memory(device), stages, cpu_seconds() - cpu0)


def run_baseline(model, source, row: Row, *, size: int | None, precision: str) -> RunResult:
    """The reference-style baseline on an mp4 path (decoding timed) or decoded frames; over the reference's
    50 tracks its output is the `TooManyTracksError`."""
    device = model.device
    reset_peak_memory(device)
    timer = StageTimer(device)
    start, cpu0 = time.perf_counter(), cpu_seconds()
    frames = (lambda: decode_all(source)) if isinstance(source, Path) else source
    try:
        out = run_reference_style(
            model, frames, window=row.window, stride=row.stride, size=size, precision=precision, timer=timer
        )
    except TooManyTracksError as exc:
        out = exc
    _sync(device)
    seconds = time.perf_counter() - start
    stages = dict(timer.seconds)
    stages["other"] = max(0.0, seconds - timer.total())
    return RunResult(seconds, out, peak_memory(device), stages, cpu_seconds() - cpu0)


def summary(times: list[float], frames: int) -> dict:
    """Median FPS of repeated runs with its range and spread (in % of the median)."""
    fps = [frames / t for t in times]
    med = statistics.median(fps)
    return {
        "fps": med,
        "fps_min": min(fps),
        "fps_max": max(fps),
        "seconds": times,
        "spread_pct": 100.0 * (max(fps) - min(fps)) / med if med else 0.0,
    }
