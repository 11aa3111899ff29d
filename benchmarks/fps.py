#!/usr/bin/env python
"""Frames per second of IFC video inference: ifc_sdk against the reference's execution strategy.

Reproduces the rows of the IFC paper's speed table (YouTube-VIS 2019 val, 360p, timing includes clip
matching) on 36-frame 360x640 videos, and measures in the same process, on the same frames and the same
weights, a reference-style baseline (`reference_style.py`: whole video through the backbone at once, dense
``(L, 50, L, h8, w8)`` stitching buffers, per-output RLE encoding), so that every speed-up is a ratio measured
in one run on one machine. See benchmarks/README.md for the method and benchmarks/RESULTS.md for numbers.

Per row, video and precision it measures:

* end-to-end FPS from an mp4 file (decode + preprocess + network + stitching + RLE output), and
* compute-only FPS from frames already decoded into memory,

for ifc_sdk and for the baseline, with warm-up, repeats (interleaved ours / baseline), the median and the
spread; a breakdown per stage (decode, preprocess, backbone, transformer + heads, stitching, output encoding)
from one extra instrumented run; the peak resident memory (and peak CUDA memory) of each run; and whether the
two produced the same outputs. It writes ``results.json``, ``results.md`` and, where matplotlib is installed,
``fps_sweep.png`` (FPS against window length and stride; ``--sweep``).

Examples::

    python benchmarks/fps.py                                  # CPU, fp32, the three rows, synthetic video
    python benchmarks/fps.py --rows r50_t5 --videos synthetic,bikes --repeats 3
    python benchmarks/fps.py --device cuda --precision fp32,bf16,fp16 --videos all --repeats 10
    python benchmarks/fps.py --quick                          # small smoke run (reduced sizes, seconds)
    ifc-sdk bench --rows r50_t36                              # the same through the CLI
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from reference_style import StageTimer, TooManyTracksError, run_reference_style  # noqa: E402

import ifc_sdk  # noqa: E402
from ifc_sdk.inference import predictor as _predictor  # noqa: E402
from ifc_sdk.inference.predictor import VideoSegmenter, collect  # noqa: E402
from ifc_sdk.io.video import open_video  # noqa: E402
from ifc_sdk.modeling import ifc_r50, ifc_r101, kernels  # noqa: E402
from ifc_sdk.modeling.backbone import ConvNorm, FrozenBatchNorm2d  # noqa: E402
from ifc_sdk.modeling.transformer import frame_slices  # noqa: E402

REPO = HERE.parent
SHARED_VIDEOS = REPO.parent / "shared" / "fixtures" / "videos"
REAL_VIDEOS = ("bigbuckbunny", "bikes", "carphone_pristine")
STAGES = ("decode", "preprocess", "backbone", "heads", "stitching", "output", "other")


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    arch: str
    window: int
    stride: int
    paper_fps: float | None


ROWS = {
    "r50_t5": Row("r50_t5", "R50 T=5", "r50", 5, 1, 46.5),
    "r50_t36": Row("r50_t36", "R50 T=36", "r50", 36, 1, 107.1),
    "r101_t36": Row("r101_t36", "R101 T=36", "r101", 36, 1, 89.4),
}


# ================================================================================================ environment
def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _nvidia_driver() -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().splitlines()[0]
    return None


def environment(device: torch.device) -> dict:
    env = {
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "ifc_sdk": getattr(ifc_sdk, "__version__", "unknown"),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "loadavg_start": list(os.getloadavg()),
        "device": str(device),
    }
    with contextlib.suppress(Exception):
        import av

        env["pyav"] = av.__version__
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        env["git_commit"] = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or None
        )
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(
            gpu=props.name,
            gpu_memory_gb=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            driver=_nvidia_driver(),
        )
        env["device_name"] = props.name
    else:
        env["device_name"] = f"CPU: {env['cpu']} ({env['cpu_count']} cores, {env['torch_threads']} threads)"
    return env


# ================================================================================================ memory
_LIBC = None


def _trim() -> None:
    """Give freed heap memory back to the OS so the next run's peak RSS starts from what is really in use."""
    global _LIBC
    with contextlib.suppress(OSError, AttributeError):
        _LIBC = _LIBC or ctypes.CDLL("libc.so.6")
        _LIBC.malloc_trim(0)


def reset_peak_memory(device: torch.device) -> None:
    import gc

    gc.collect()
    _trim()
    with contextlib.suppress(OSError):  # Linux: "5" resets VmHWM (peak RSS) to the current RSS
        Path("/proc/self/clear_refs").write_text("5")
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> dict:
    out = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                out["peak_rss_gb"] = round(int(line.split()[1]) / 2**20, 3)
    if device.type == "cuda":
        out["peak_cuda_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
    return out


# ================================================================================================ videos
def synthetic_frames(num_frames: int, height: int, width: int, seed: int = 0) -> Iterator[np.ndarray]:
    """Deterministic moving textured ellipses and boxes over a drifting gradient, uint8 RGB."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    objects = []
    for _ in range(6):
        objects.append(
            dict(
                c=rng.uniform(0, 1, 2) * (height, width),
                v=rng.uniform(-2, 2, 2) * (height / 360),
                r=rng.uniform(0.06, 0.2, 2) * min(height, width) + 2,
                color=rng.uniform(30, 255, 3),
                freq=rng.uniform(0.05, 0.2),
                box=bool(rng.integers(0, 2)),
            )
        )
    for t in range(num_frames):
        base = (yy / height * 120 + xx / width * 80 + 20 * np.sin(0.05 * t)).astype(np.float32)
        img = np.repeat(base[..., None], 3, axis=2) + np.array([20, 40, 60], np.float32)
        for o in objects:
            cy, cx = (o["c"] + o["v"] * t) % (height, width)
            dy, dx = (yy - cy) / o["r"][0], (xx - cx) / o["r"][1]
            inside = (np.maximum(abs(dy), abs(dx)) < 1) if o["box"] else (dy * dy + dx * dx < 1)
            texture = 0.8 + 0.2 * np.sin(o["freq"] * (xx + yy) + t * 0.3)
            img[inside] = (o["color"] * texture[inside, None]).astype(np.float32)
        yield np.clip(img, 0, 255).astype(np.uint8)


def real_frames(name: str, num_frames: int, height: int, width: int) -> Iterator[np.ndarray]:
    """The first frames of a shared real clip resized to ``height x width`` (PIL bilinear); the clip is
    played forwards and backwards as often as needed to reach ``num_frames``."""
    from PIL import Image

    path = SHARED_VIDEOS / f"{name}.mp4"
    if not path.exists():
        raise SystemExit(f"real clip {path} not found (expected ../shared/fixtures/videos beside the repo)")
    frames = []
    with open_video(path) as reader:
        for frame in reader:
            frames.append(np.asarray(Image.fromarray(frame.image).resize((width, height), Image.BILINEAR)))
            if len(frames) >= num_frames:
                break
    cycle = frames + frames[-2:0:-1] if len(frames) > 1 else frames
    for i in range(num_frames):
        yield cycle[i % len(cycle)]


def write_mp4(frames: Iterable[np.ndarray], path: Path, fps: int = 25, crf: int = 18) -> Path:
    """H.264 (libx264, yuv420p) as the YouTube-VIS sources are lossy video; written atomically."""
    import av

    tmp = path.with_suffix(".tmp.mp4")
    with av.open(str(tmp), "w") as container:
        stream = None
        for frame in frames:
            if stream is None:
                stream = container.add_stream("libx264", rate=Fraction(fps, 1))
                stream.pix_fmt = "yuv420p"
                stream.height, stream.width = frame.shape[:2]
                stream.options = {"crf": str(crf), "preset": "fast"}
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    tmp.replace(path)
    return path


def prepare_video(name: str, num_frames: int, height: int, width: int, cache: Path) -> Path:
    """The mp4 for one benchmark video (cached under ``cache``)."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{name}_{num_frames}f_{height}x{width}.mp4"
    if not path.exists():
        frames = (
            synthetic_frames(num_frames, height, width)
            if name == "synthetic"
            else real_frames(name, num_frames, height, width)
        )
        write_mp4(frames, path)
    return path


def decode_all(path: Path) -> list[np.ndarray]:
    with open_video(path) as reader:
        return [frame.image for frame in reader]


# ================================================================================================ models
def identity_frozen_bn(model) -> None:
    """Random weights with FrozenBN = identity (mean 0, var 1, weight 1, bias 0): activations stay bounded."""
    for m in model.modules():
        if isinstance(m, FrozenBatchNorm2d):
            m.running_mean.zero_()
            m.running_var.fill_(1.0)
            m.weight.fill_(1.0)
            m.bias.zero_()


@torch.inference_mode()
def calibrate_random_heads(
    model,
    frames: list[np.ndarray],
    size: int | None,
    instances: int,
    logit_std: float = 6.0,
    mask_logit_std: float = 4.0,
) -> dict:
    """Make a random model create about as much downstream work as a trained one, with clear decisions.

    On one clip (``frames``: the row's first window): the class head's last layer is rescaled so class logits
    spread with std ``logit_std`` (peaked class probabilities: a few labels above 0.01 per track) and the
    no-object bias is set so that ``instances`` queries are instances; the dynamic mask weights are
    re-centred over the queries and rescaled so that mask logits have std ``mask_logit_std`` (distinct,
    partly-on masks, so matching decisions are not near-ties). The same recipe as the reference fixtures'
    weights (../shared/fixtures/reference/README.md). Other clips give about as many instances."""
    from ifc_sdk.inference.preprocess import resize_frames, resized_shape, to_tensor

    x = to_tensor(np.stack(frames), model.device)
    if size is not None:
        x = resize_frames(x, resized_shape(*x.shape[-2:], size))
    captured = {}
    cls_last = model.class_embed.layers[-1]
    mask_last = model.mask_head.convert_to_weight.layers[-1]
    hooks = [
        cls_last.register_forward_hook(lambda mod, inp, out: captured.__setitem__("cls", inp[0])),
        mask_last.register_forward_hook(lambda mod, inp, out: captured.__setitem__("mask", inp[0])),
        model.mask_head.out_lay.register_forward_hook(
            lambda mod, inp, out: captured.__setitem__("feats", out)
        ),
    ]
    try:
        states, size5 = [], None
        for part in frame_slices(len(x), 4):  # backbone batches of 4 frames (never 1, see VideoSegmenter)
            f = model.backbone_features(model.normalize(x[part]))
            size5 = tuple(f["res5"].shape[-2:])
            states.append(model.frame_states(f["res3"], f["res4"], f["res5"]))
        stacked = {k: torch.cat([s[k] for s in states]) for k in states[0]}
        model.forward_frame_states(stacked, len(frames), size5)
    finally:
        for h in hooks:
            h.remove()
    # Dynamic mask weights: w_q = W a_q + b; re-centre over queries (b = -W mean(a)), then scale.
    a = captured["mask"].reshape(-1, captured["mask"].shape[-1]).float()  # (Q, C)
    mask_last.bias.copy_(-(mask_last.weight.float() @ a.mean(0)))
    w = a @ mask_last.weight.float().T + mask_last.bias.float()  # (Q, C)
    feats = captured["feats"].float()  # (T, C, h, w)
    logits = torch.einsum("qc,tchw->qthw", w, feats)
    scale = mask_logit_std / logits.std().clamp_min(1e-12)
    mask_last.weight.mul_(scale)
    mask_last.bias.mul_(scale)
    # Class head.
    h = captured["cls"].reshape(-1, captured["cls"].shape[-1]).float()  # (Q, C)
    raw = h @ cls_last.weight.float().T
    cls_last.weight.mul_(logit_std / raw[:, :-1].std().clamp_min(1e-6))
    cls_last.bias.zero_()
    cls = h @ cls_last.weight.float().T
    margin = (cls[:, :-1].max(-1).values - cls[:, -1]).sort(descending=True).values
    k = min(max(instances, 0), margin.numel())
    if k == 0:
        bias = float(margin[0]) + 1.0
    elif k == margin.numel():
        bias = float(margin[-1]) - 1.0
    else:
        bias = float(margin[k - 1] + margin[k]) / 2
    cls_last.bias[-1] = bias
    return {
        "instances_target": instances,
        "class_logit_std": logit_std,
        "mask_logit_std": mask_logit_std,
        "calibration_frames": len(frames),
    }


def build_model(
    arch: str,
    device: torch.device,
    *,
    seed: int = 0,
    weights: str | None = None,
    calib_frames: list[np.ndarray] | None = None,
    size: int | None = 360,
    instances: int = 10,
    **overrides,
):
    """A full-size IFC: real weights when ``weights`` is given, else seeded random weights (calibrated)."""
    info = {"arch": arch}
    if weights:
        model = ifc_sdk.load_model(weights, preset=arch, device=device, **overrides)
        info["weights"] = str(weights)
        return model, info
    torch.manual_seed(seed)
    model = (ifc_r50 if arch == "r50" else ifc_r101)(**overrides)
    identity_frozen_bn(model)
    model = model.to(device).eval()
    info.update(weights=f"random (seed {seed}), FrozenBN identity")
    if calib_frames is not None and instances > 0:
        info.update(calibrate_random_heads(model, calib_frames, size, instances))
    return model, info


# ================================================================================================ runs
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class RunResult:
    seconds: float
    output: object
    memory: dict
    stages: dict | None = None
    cpu_seconds: float = 0.0


# ifc_sdk variants for the step-by-step measurements (--ablation), cumulative; "sdk" is the library as it is.
VARIANTS = {
    "before": "ifc_sdk before this work: backbone batches of `window` frames, out-of-place FrozenBN and "
    "residual add, heads from backbone features per window",
    "batches": "+ backbone batches of 2 frames (CPU)",
    "inplace": "+ in-place FrozenBN and residual add (CPU)",
    "reuse": "+ per-frame states (pos, input_proj, 1st encoder layer, mask adapters) reused across windows",
    "sdk": "+ per-frame parts of each window in groups of 2 frames (CPU) = ifc_sdk now",
}


_CONVNORM_FORWARD = ConvNorm.forward


def _legacy_convnorm_forward(self, x):  # ConvNorm.forward before this work: FrozenBN out of place on the CPU
    if not kernels.reference_kernels(x.device):  # the accelerator path did not change
        return _CONVNORM_FORWARD(self, x)
    return self.norm(torch.nn.Conv2d.forward(self, x))


def _legacy_bottleneck_forward(self, x):  # BottleneckBlock.forward before this work
    relu_ = torch.nn.functional.relu_
    out = relu_(self.conv1(x))
    out = relu_(self.conv2(out))
    out = self.conv3(out)
    shortcut = x if self.shortcut is None else self.shortcut(x)
    return relu_(out + shortcut)


@contextlib.contextmanager
def _variant(model, variant: str, row: Row):
    """Emulate the earlier steps of ifc_sdk (`VARIANTS`); yields VideoSegmenter keyword arguments and a
    function applied to the segmenter."""
    from ifc_sdk.modeling import backbone as bb

    if variant not in VARIANTS:
        raise SystemExit(f"unknown variant {variant!r}; choose from {list(VARIANTS)}")
    order = list(VARIANTS)
    step = order.index(variant)
    saved = (bb.ConvNorm.forward, bb.BottleneckBlock.forward)
    if step < order.index("inplace"):
        bb.ConvNorm.forward, bb.BottleneckBlock.forward = _legacy_convnorm_forward, _legacy_bottleneck_forward
    if step < order.index("reuse"):

        def states(res3, res4, res5, mask5=None):
            return {"res3": res3, "res4": res4, "res5": res5}

        def heads(st, num_frames):
            out = model.forward_clips(st["res3"], st["res4"], st["res5"], num_frames, aux=False)
            return out["pred_logits"][0], out["pred_masks"][0]

        model.frame_states = states
    kwargs = {"batch_frames": row.window} if variant == "before" else {}

    def adjust(segmenter):  # segmenter.model: the EagerClipModel wrapping `model`
        if step < order.index("reuse"):
            segmenter.model.window_heads = heads
        if step < order.index("sdk"):
            segmenter.model.frame_chunk = None

    try:
        yield kwargs, adjust
    finally:
        bb.ConvNorm.forward, bb.BottleneckBlock.forward = saved
        model.__dict__.pop("frame_states", None)


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
    """ifc_sdk: ``segment_video`` on an mp4 path (end-to-end) or `VideoSegmenter` on decoded frames."""
    device = model.device
    reset_peak_memory(device)
    timer = StageTimer(device) if instrument else None
    start, cpu0 = time.perf_counter(), _cpu_seconds()
    with _variant(model, variant, row) as (kwargs, adjust):
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
                    with _instrumented(segmenter, timer):
                        result = collect(segmenter, segmenter.run(_timed_iter(frames, timer, "decode")))
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
    return RunResult(seconds, result, peak_memory(device), stages, _cpu_seconds() - cpu0)


def run_baseline(model, source, row: Row, *, size: int | None, precision: str) -> RunResult:
    device = model.device
    reset_peak_memory(device)
    timer = StageTimer(device)
    start, cpu0 = time.perf_counter(), _cpu_seconds()
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
    return RunResult(seconds, out, peak_memory(device), stages, _cpu_seconds() - cpu0)


def _timed_iter(items: Iterable, timer: StageTimer, stage: str) -> Iterator:
    it = iter(items)
    while True:
        with timer(stage):
            try:
                item = next(it)
            except StopIteration:
                return
        yield item


def _timed(fn: Callable, timer: StageTimer, stage: str) -> Callable:
    def wrapper(*args, **kwargs):
        with timer(stage):
            return fn(*args, **kwargs)

    return wrapper


@contextlib.contextmanager
def _instrumented(segmenter: VideoSegmenter, timer: StageTimer):
    """Charge ifc_sdk's work to stages by wrapping the functions the predictor calls (instrumented run only)."""
    model, tracker = segmenter.model.model, segmenter.tracker
    saved_module = {
        name: getattr(_predictor, name) for name in ("to_tensor", "resize_frames", "encode_masks")
    }
    stage_of = {"to_tensor": "preprocess", "resize_frames": "preprocess", "encode_masks": "output"}
    emit = segmenter._emit

    def timed_emit(*args, **kwargs):
        yield from _timed_iter(emit(*args, **kwargs), timer, "output")

    try:
        for name, fn in saved_module.items():
            setattr(_predictor, name, _timed(fn, timer, stage_of[name]))
        model.normalize = _timed(type(model).normalize.__get__(model), timer, "preprocess")
        model.backbone_features = _timed(type(model).backbone_features.__get__(model), timer, "backbone")
        model.forward_clips = _timed(type(model).forward_clips.__get__(model), timer, "heads")
        if hasattr(type(model), "frame_states"):  # per-frame part of the heads (run right after the backbone)
            model.frame_states = _timed(type(model).frame_states.__get__(model), timer, "heads")
            model.forward_frame_states = _timed(
                type(model).forward_frame_states.__get__(model), timer, "heads"
            )
        tracker.add_clip = _timed(tracker.add_clip, timer, "stitching")
        tracker.pop_frames = _timed(tracker.pop_frames, timer, "stitching")
        segmenter._emit = timed_emit
        yield
    finally:
        for name, fn in saved_module.items():
            setattr(_predictor, name, fn)
        for name in (
            "normalize",
            "backbone_features",
            "forward_clips",
            "frame_states",
            "forward_frame_states",
        ):
            model.__dict__.pop(name, None)


# ================================================================================================ comparisons
def compare_outputs(ours, base) -> dict:
    """ifc_sdk's `VideoResult` against the baseline's `ReferenceOutput`: same outputs (labels, tracks, order),
    scores, track class probabilities and mask pixels."""
    if isinstance(base, Exception):
        return {"equal": False, "note": f"baseline failed: {base}"}
    preds = ours.predictions(multi_class=True, threshold=0.01)
    info = {
        "tracks": len(ours.tracks),
        "baseline_tracks": int(base.track_cls.shape[0]),
        "outputs": len(preds),
        "baseline_outputs": len(base.labels),
    }
    same_list = [p.label for p in preds] == base.labels and [p.track_id for p in preds] == base.track_idx
    info["labels_and_order_equal"] = same_list
    if info["tracks"] == info["baseline_tracks"] and info["tracks"]:
        probs = np.stack([t.class_probs for t in ours.tracks])
        info["max_class_prob_abs_diff"] = float(np.abs(probs - base.track_cls.numpy()).max())
        mine = np.stack([t.mask_array() for t in ours.tracks])
        theirs = base.track_masks.numpy()
        info["mask_pixels_differing"] = int((mine != theirs).sum())
        info["mask_pixels"] = int(mine.size)
    if same_list and preds:
        info["max_score_rel_diff"] = float(
            max(abs(p.score - s) / max(abs(s), 1e-12) for p, s in zip(preds, base.scores))
        )
    info["equal"] = bool(
        same_list
        and info["tracks"] == info["baseline_tracks"]
        and info.get("max_score_rel_diff", 0.0) <= 1e-5
        and info.get("mask_pixels_differing", 0) <= 1e-4 * max(info.get("mask_pixels", 1), 1)
    )
    return info


def mask_iou_between(ref, other) -> dict:
    """Video-level mask IoU of two results' tracks (e.g. fp32 vs bf16): tracks are paired by Hungarian
    matching on IoU; unmatched reference tracks count as 0. Returns the area-weighted and the plain mean."""
    from scipy.optimize import linear_sum_assignment

    a = [t.mask_array() for t in ref.tracks]
    b = [t.mask_array() for t in other.tracks]
    if not a:
        return {"mask_iou": 1.0 if not b else 0.0, "mask_iou_mean": 1.0 if not b else 0.0, "tracks": 0}
    iou = np.zeros((len(a), max(len(b), 1)))
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            union = np.logical_or(x, y).sum()
            iou[i, j] = np.logical_and(x, y).sum() / union if union else 1.0
    rows, cols = linear_sum_assignment(iou, maximize=True)
    best = np.zeros(len(a))
    best[rows] = iou[rows, cols]
    area = np.array([x.sum() for x in a], dtype=np.float64)
    weighted = float((best * area).sum() / area.sum()) if area.sum() else float(best.mean())
    return {
        "mask_iou": weighted,
        "mask_iou_mean": float(best.mean()),
        "tracks": len(a),
        "other_tracks": len(b),
    }


# ================================================================================================ measurement
def _summary(times: list[float], frames: int) -> dict:
    fps = [frames / t for t in times]
    med = statistics.median(fps)
    return {
        "fps": med,
        "fps_min": min(fps),
        "fps_max": max(fps),
        "seconds": times,
        "spread_pct": 100.0 * (max(fps) - min(fps)) / med if med else 0.0,
    }


def measure_row(
    model,
    row: Row,
    video: str,
    path: Path,
    frames: list[np.ndarray],
    *,
    precision: str,
    modes: list[str],
    repeats: int,
    warmup: int,
    size: int | None,
    baseline: bool,
    breakdown: bool,
    log: Callable[[str], None],
) -> list[dict]:
    """All measurements of one (row, video, precision): returns one result dict per mode."""
    device = model.device
    num_frames = len(frames)
    sources = {"e2e": path, "compute": frames}
    # Short warm-up (kernel selection, allocator), then full-length warm-ups (torch.compile / CUDA caches).
    short = frames[: min(num_frames, min(row.window, 6) + 2)]
    run_ours(model, short, row, size=size, precision=precision)
    if baseline:
        run_baseline(model, short, row, size=size, precision=precision)
    for _ in range(warmup):
        run_ours(model, frames, row, size=size, precision=precision)
        if baseline:
            run_baseline(model, frames, row, size=size, precision=precision)
    results = []
    for mode in modes:
        ours_runs, base_runs = [], []
        for r in range(repeats):
            ours_runs.append(run_ours(model, sources[mode], row, size=size, precision=precision))
            log(
                f"  {row.label} {video} {mode} {precision} ours run {r + 1}/{repeats}: "
                f"{ours_runs[-1].seconds:.2f} s ({num_frames / ours_runs[-1].seconds:.2f} FPS) "
                f"{ours_runs[-1].memory} cpu/wall {ours_runs[-1].cpu_seconds / ours_runs[-1].seconds:.2f}"
            )
            if baseline:
                base_runs.append(run_baseline(model, sources[mode], row, size=size, precision=precision))
                log(
                    f"  {row.label} {video} {mode} {precision} base run {r + 1}/{repeats}: "
                    f"{base_runs[-1].seconds:.2f} s ({num_frames / base_runs[-1].seconds:.2f} FPS) "
                    f"{base_runs[-1].memory} cpu/wall {base_runs[-1].cpu_seconds / base_runs[-1].seconds:.2f}"
                )
        ours = _summary([x.seconds for x in ours_runs], num_frames)
        entry = {
            "name": f"{row.label} | {video} | {'end-to-end (mp4)' if mode == 'e2e' else 'compute-only'}",
            "row": row.key,
            "video": video,
            "mode": mode,
            "precision": precision,
            "device": str(device),
            "window": row.window,
            "stride": row.stride,
            "frames": num_frames,
            "fps": round(ours["fps"], 4),
            "fps_min": round(ours["fps_min"], 4),
            "fps_max": round(ours["fps_max"], 4),
            "fps_spread_pct": round(ours["spread_pct"], 1),
            "seconds": [round(s, 3) for s in ours["seconds"]],
            "peak_rss_gb": max(x.memory.get("peak_rss_gb", 0) for x in ours_runs),
            "cpu_util": round(statistics.median(o.cpu_seconds / o.seconds for o in ours_runs), 2),
            "paper_fps": row.paper_fps,
        }
        if device.type == "cuda":
            entry["peak_cuda_gb"] = max(x.memory.get("peak_cuda_gb", 0) for x in ours_runs)
        failed = next((b.output for b in base_runs if isinstance(b.output, Exception)), None)
        if baseline and failed is not None:  # e.g. over the reference's 50 tracks: no speed to compare
            entry.update(
                baseline_fps=None, speedup=None, outputs=compare_outputs(ours_runs[-1].output, failed)
            )
        elif baseline:
            base = _summary([x.seconds for x in base_runs], num_frames)
            entry.update(
                baseline_fps=round(base["fps"], 4),
                baseline_fps_min=round(base["fps_min"], 4),
                baseline_fps_max=round(base["fps_max"], 4),
                baseline_fps_spread_pct=round(base["spread_pct"], 1),
                baseline_seconds=[round(s, 3) for s in base["seconds"]],
                baseline_peak_rss_gb=max(x.memory.get("peak_rss_gb", 0) for x in base_runs),
                speedup=round(ours["fps"] / base["fps"], 3),
                speedup_range=[
                    round(min(o.seconds for o in base_runs) / max(o.seconds for o in ours_runs), 3),
                    round(max(o.seconds for o in base_runs) / min(o.seconds for o in ours_runs), 3),
                ],
                baseline_breakdown_s={
                    k: round(statistics.median(x.stages.get(k, 0.0) for x in base_runs), 3) for k in STAGES
                },
                speedup_paired_median=round(
                    statistics.median(b.seconds / o.seconds for o, b in zip(ours_runs, base_runs)), 3
                ),
                speedup_cpu_time=round(
                    statistics.median(b.cpu_seconds for b in base_runs)
                    / statistics.median(o.cpu_seconds for o in ours_runs),
                    3,
                ),
                baseline_cpu_util=round(statistics.median(b.cpu_seconds / b.seconds for b in base_runs), 2),
                outputs=compare_outputs(ours_runs[-1].output, base_runs[-1].output),
            )
            if device.type == "cuda":
                entry["baseline_peak_cuda_gb"] = max(x.memory.get("peak_cuda_gb", 0) for x in base_runs)
        else:
            entry.update(baseline_fps=None, speedup=None)
        if breakdown:
            prof = run_ours(model, sources[mode], row, size=size, precision=precision, instrument=True)
            entry["breakdown_s"] = {k: round(prof.stages.get(k, 0.0), 3) for k in STAGES}
            entry["breakdown_total_s"] = round(prof.seconds, 3)
        entry["_result"] = ours_runs[-1].output
        results.append(entry)
    return results


def decode_fps(path: Path, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        n = len(decode_all(path))
        times.append(time.perf_counter() - start)
    return n / statistics.median(times)


def run_ablation(
    model, row: Row, path: Path, frames: list[np.ndarray], *, size, precision, repeats, log
) -> list[dict]:
    """The speed-up steps one by one (`VARIANTS`, cumulative; end-to-end from the mp4, interleaved repeats), and
    the reference-style baseline."""
    variants = list(VARIANTS)
    short = frames[: min(len(frames), min(row.window, 6) + 2)]
    for v in variants:
        run_ours(model, short, row, size=size, precision=precision, variant=v)
    run_baseline(model, short, row, size=size, precision=precision)
    times: dict[str, list[RunResult]] = {v: [] for v in [*variants, "reference_style"]}
    for r in range(repeats):
        for v in variants:
            times[v].append(run_ours(model, path, row, size=size, precision=precision, variant=v))
            log(f"  ablation {row.label} {v} run {r + 1}: {times[v][-1].seconds:.2f} s {times[v][-1].memory}")
        times["reference_style"].append(run_baseline(model, path, row, size=size, precision=precision))
        log(
            f"  ablation {row.label} reference_style run {r + 1}: {times['reference_style'][-1].seconds:.2f} s"
        )
    out = []
    base = statistics.median(x.seconds for x in times["reference_style"])
    for v, runs in times.items():
        med = statistics.median(x.seconds for x in runs)
        out.append(
            {
                "row": row.key,
                "variant": v,
                "description": VARIANTS.get(v, "reference-style baseline"),
                "fps": round(len(frames) / med, 4),
                "fps_min": round(len(frames) / max(x.seconds for x in runs), 4),
                "fps_max": round(len(frames) / min(x.seconds for x in runs), 4),
                "seconds": [round(x.seconds, 3) for x in runs],
                "speedup_vs_baseline": round(base / med, 3),
                "peak_rss_gb": max(x.memory.get("peak_rss_gb", 0) for x in runs),
            }
        )
    return out


# ================================================================================================ sweep
def run_sweep(
    model,
    path: Path,
    frames: list[np.ndarray],
    windows: list[int],
    strides: list[str],
    *,
    size: int | None,
    precision: str,
    repeats: int,
    baseline: bool,
    log,
) -> list[dict]:
    """End-to-end FPS against the window length T (stride 1, T/2 and T) for one model and video."""
    out, seen = [], set()
    for window in windows:
        for s in strides:
            stride = {"1": 1, "half": max(1, window // 2), "T": window}[s]
            if (window, stride) in seen:
                continue
            seen.add((window, stride))
            row = Row(f"sweep_t{window}_s{stride}", f"T={window} S={stride}", "", window, stride, None)
            run_ours(model, frames[: window + 2], row, size=size, precision=precision)
            times = [
                run_ours(model, path, row, size=size, precision=precision).seconds for _ in range(repeats)
            ]
            entry = {
                "window": window,
                "stride": stride,
                "stride_rule": s,
                "fps": round(len(frames) / statistics.median(times), 4),
            }
            if baseline:
                bt = [
                    run_baseline(model, path, row, size=size, precision=precision).seconds
                    for _ in range(repeats)
                ]
                entry["baseline_fps"] = round(len(frames) / statistics.median(bt), 4)
            log(f"  sweep T={window} S={stride}: {entry}")
            out.append(entry)
    return out


def plot_sweep(sweep: list[dict], path: Path, title: str) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for rule, style in (("1", "o-"), ("half", "s--"), ("T", "^:")):
        pts = sorted(
            (e["window"], e["fps"], e.get("baseline_fps")) for e in sweep if e["stride_rule"] == rule
        )
        if not pts:
            continue
        label = {"1": "stride 1", "half": "stride T/2", "T": "stride T"}[rule]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=f"ifc_sdk, {label}")
        if all(p[2] for p in pts):
            ax.plot(
                [p[0] for p in pts], [p[2] for p in pts], style, alpha=0.4, label=f"reference-style, {label}"
            )
    ax.set_xlabel("window length T (frames)")
    ax.set_ylabel("end-to-end FPS")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ================================================================================================ reports
def _row_label(key: str) -> str:
    return ROWS[key].label if key in ROWS else key


def _fmt(v, nd=2) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def markdown(report: dict) -> str:
    env, cfg = report["env"], report["config"]
    lines = [
        f"# IFC FPS benchmark ({env['device_name']})",
        "",
        f"torch {env['torch']}, python {env['python']}"
        + (f", CUDA {env.get('cuda')}, driver {env.get('driver')}" if env.get("cuda") else "")
        + f"; {cfg['frames']} frames {cfg['height']}x{cfg['width']}, short side {cfg['size']}; median of "
        f"{cfg['repeats']} interleaved runs [min-max]; load average at start {env['loadavg_start']}, end "
        f"{env.get('loadavg_end', '-')}; {env['time']}",
        "",
        "| row | video | mode | precision | ifc_sdk FPS | reference-style FPS | speed-up (medians) "
        "| speed-up paired [range] | speed-up CPU time | paper FPS | peak RSS ours / base (GB) | outputs equal |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in report["rows"]:
        ours = f"{_fmt(e['fps'])} [{_fmt(e['fps_min'])}-{_fmt(e['fps_max'])}]"
        base = (
            "-"
            if e.get("baseline_fps") is None
            else f"{_fmt(e['baseline_fps'])} [{_fmt(e['baseline_fps_min'])}-{_fmt(e['baseline_fps_max'])}]"
        )
        speed = "-" if e.get("speedup") is None else f"{e['speedup']:.2f}x"
        paired = (
            "-"
            if e.get("speedup_paired_median") is None
            else f"{e['speedup_paired_median']:.2f}x [{e['speedup_range'][0]:.2f}-{e['speedup_range'][1]:.2f}]"
        )
        cpu = "-" if e.get("speedup_cpu_time") is None else f"{e['speedup_cpu_time']:.2f}x"
        mem = f"{_fmt(e['peak_rss_gb'])} / {_fmt(e.get('baseline_peak_rss_gb'))}"
        if e["device"].startswith("cuda"):
            mem += f" (CUDA {_fmt(e.get('peak_cuda_gb'))} / {_fmt(e.get('baseline_peak_cuda_gb'))})"
        eq = e.get("outputs", {})
        equal = (
            "-"
            if not eq
            else eq["note"]
            if "note" in eq
            else ("yes" if eq.get("equal") else "NO")
            + f" ({eq.get('tracks', '?')} tracks, {eq.get('outputs', '?')} outputs, "
            f"{eq.get('mask_pixels_differing', '?')} px differ)"
        )
        mode = "end-to-end" if e["mode"] == "e2e" else "compute-only"
        label = _row_label(e["row"])
        lines.append(
            f"| {label} | {e['video']} | {mode} | {e['precision']} | {ours} | {base} | {speed} | {paired} | {cpu} "
            f"| {_fmt(e['paper_fps'], 1)} | {mem} | {equal} |"
        )
    bd = [e for e in report["rows"] if "breakdown_s" in e]
    if bd:
        lines += [
            "",
            "Breakdown, seconds per video (ifc_sdk: one extra instrumented run; reference-style: median of the "
            "timed runs). ifc_sdk decodes in a background thread: its `decode` is only the time compute waited "
            "for frames.",
            "",
            "| row | video | mode | precision | side | " + " | ".join(STAGES) + " | total |",
            "|---|---|---|---|---|" + "---|" * (len(STAGES) + 1),
        ]
        for e in bd:
            mode = "end-to-end" if e["mode"] == "e2e" else "compute-only"
            label = _row_label(e["row"])
            head = f"| {label} | {e['video']} | {mode} | {e['precision']} "
            lines.append(
                head
                + "| ifc_sdk | "
                + " | ".join(_fmt(e["breakdown_s"][k]) for k in STAGES)
                + f" | {_fmt(e['breakdown_total_s'])} |"
            )
            if e.get("baseline_breakdown_s"):
                b = e["baseline_breakdown_s"]
                lines.append(
                    head
                    + "| reference-style | "
                    + " | ".join(_fmt(b[k]) for k in STAGES)
                    + f" | {_fmt(sum(b.values()))} |"
                )
    if report.get("ablation"):
        lines += [
            "",
            "Speed-up steps (end-to-end from the mp4, first video; median [min-max] of interleaved runs)",
            "",
            "| row | variant | FPS | vs reference-style | peak RSS (GB) |",
            "|---|---|---|---|---|",
        ]
        for e in report["ablation"]:
            label = _row_label(e["row"])
            lines.append(
                f"| {label} | {e['description']} | {_fmt(e['fps'], 3)} [{_fmt(e['fps_min'], 3)}-"
                f"{_fmt(e['fps_max'], 3)}] | {e['speedup_vs_baseline']:.2f}x | {_fmt(e['peak_rss_gb'])} |"
            )
    if report.get("memory"):
        lines += [
            "",
            "Peak resident memory of one end-to-end run, each in a fresh process (model and interpreter included)",
            "",
            "| row | video | side | peak RSS (GB) | RSS before the run (GB) | run time (s) |",
            "|---|---|---|---|---|---|",
        ]
        for e in report["memory"]:
            label = _row_label(e["row"])
            side = "ifc_sdk" if e["side"] == "ours" else "reference-style"
            lines.append(
                f"| {label} | {e['video']} | {side} | {_fmt(e.get('peak_rss_gb'))} | "
                f"{_fmt(e.get('rss_before_run_gb'))} | {_fmt(e['seconds'], 1)} |"
            )
    if report.get("precision_iou"):
        lines += [
            "",
            "Reduced precision against fp32 (video mask IoU, tracks paired by Hungarian matching)",
            "",
            "| row | video | precision | mask IoU (area-weighted) | mean IoU | tracks fp32 / reduced |",
            "|---|---|---|---|---|---|",
        ]
        for e in report["precision_iou"]:
            lines.append(
                f"| {e['row']} | {e['video']} | {e['precision']} | {e['mask_iou']:.4f} | "
                f"{e['mask_iou_mean']:.4f} | {e['tracks']} / {e['other_tracks']} |"
            )
    if report.get("decode_fps"):
        lines += [
            "",
            "Decode only (threaded PyAV, RGB conversion): "
            + ", ".join(f"{k} {v:.0f} FPS" for k, v in report["decode_fps"].items()),
        ]
    if report.get("sweep"):
        lines += [
            "",
            f"FPS against window length and stride (end-to-end; {report.get('sweep_info')}; plot: "
            f"{report.get('sweep_plot')})",
            "",
            "| T | S | ifc_sdk FPS | reference-style FPS |",
            "|---|---|---|---|",
        ]
        for e in report["sweep"]:
            lines.append(
                f"| {e['window']} | {e['stride']} | {_fmt(e['fps'])} | {_fmt(e.get('baseline_fps'))} |"
            )
    lines += ["", f"Models: {json.dumps(report['models'])}", "", f"Command: `{report['command']}`", ""]
    return "\n".join(lines)


# ================================================================================================ main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="fps.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--rows", default="r50_t5,r50_t36,r101_t36", help=f"comma list of {sorted(ROWS)}")
    p.add_argument(
        "--videos",
        default="synthetic",
        help="comma list of synthetic,bigbuckbunny,bikes,carphone_pristine, or 'all' / 'real'",
    )
    p.add_argument("--frames", type=int, default=36)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--size", type=int, default=360, help="test-time short side (0 keeps the frames)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--precision", default="fp32", help="comma list of fp32,bf16,fp16 (reduced: CUDA only)")
    p.add_argument("--modes", default="e2e,compute", help="comma list of e2e,compute")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="full-length warm-up runs per measurement (default: 0 on CPU, 2 on CUDA); a short "
        "warm-up always runs",
    )
    p.add_argument("--no-baseline", action="store_true", help="skip the reference-style baseline")
    p.add_argument("--no-breakdown", action="store_true", help="skip the instrumented breakdown run")
    p.add_argument(
        "--weights",
        action="append",
        default=[],
        metavar="ARCH=PATH",
        help="real weights, e.g. r50=/path/r50.pth (default: random weights)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--instances",
        type=int,
        default=20,
        help="random weights: calibrate the class head to about this many instances per clip",
    )
    p.add_argument(
        "--channels-last",
        choices=("auto", "on", "off"),
        default="auto",
        help="CUDA: backbone in channels_last (auto = on for CUDA; never on CPU)",
    )
    p.add_argument(
        "--compile",
        choices=("off", "default", "max-autotune", "reduce-overhead"),
        default="off",
        help="CUDA only: torch.compile the backbone (reduce-overhead adds CUDA graphs)",
    )
    p.add_argument(
        "--ablation",
        action="store_true",
        help="also measure the speed-up steps one by one (first video, first precision)",
    )
    p.add_argument("--only-ablation", action="store_true", help="skip the main table (implies --ablation)")
    p.add_argument("--sweep", action="store_true", help="also measure FPS against window length and stride")
    p.add_argument("--sweep-windows", default="1,2,5,10,18,36")
    p.add_argument("--sweep-strides", default="1,half,T")
    p.add_argument("--sweep-baseline", action="store_true")
    p.add_argument("--cache", type=Path, default=HERE / ".cache", help="where the benchmark mp4s are written")
    p.add_argument(
        "--out", type=Path, default=None, help="output folder (default: benchmarks/results/<device>)"
    )
    p.add_argument(
        "--quick", action="store_true", help="smoke run: 8 frames of 96x160, reduced-width models, one repeat"
    )
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument(
        "--memory",
        action="store_true",
        help="also measure the peak RSS of one end-to-end run per side in a fresh process each",
    )
    p.add_argument("--memory-only", action="store_true", help="only the fresh-process memory measurement")
    p.add_argument("--probe", choices=("ours", "baseline"), help=argparse.SUPPRESS)
    p.add_argument("--probe-weights", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _probe(args, device: torch.device, size: int | None, overrides: dict) -> int:
    """Child process of --memory: one end-to-end run of one side; prints its peak memory as JSON."""
    row = ROWS[args.rows.split(",")[0]]
    path = prepare_video(args.videos.split(",")[0], args.frames, args.height, args.width, args.cache)
    model, _ = build_model(row.arch, device, seed=args.seed, instances=0, **overrides)
    model.load_state_dict(torch.load(args.probe_weights, map_location=device, weights_only=True))
    before = peak_memory(device)
    run = (run_ours if args.probe == "ours" else run_baseline)(model, path, row, size=size, precision="fp32")
    print(
        json.dumps(
            {
                "side": args.probe,
                "row": row.key,
                "seconds": run.seconds,
                "rss_before_run_gb": before.get("peak_rss_gb"),
                **run.memory,
            }
        )
    )
    return 0


def measure_memory(model, row: Row, video: str, args, log) -> list[dict]:
    """Peak RSS of one end-to-end run per side, each in a fresh process (no memory left over from other runs)."""
    import tempfile

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "model.pt"
        torch.save(model.state_dict(), weights)
        for side in ("ours", "baseline"):
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--probe",
                side,
                "--probe-weights",
                str(weights),
                "--rows",
                row.key,
                "--videos",
                video,
                "--frames",
                str(args.frames),
                "--height",
                str(args.height),
                "--width",
                str(args.width),
                "--size",
                str(args.size),
                "--device",
                str(model.device),
                "--seed",
                str(args.seed),
                "--cache",
                str(args.cache),
            ]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            if args.quick:
                cmd += ["--quick"]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                log(f"  memory probe {side} failed: {done.stderr[-2000:]}")
                continue
            entry = json.loads(done.stdout.strip().splitlines()[-1]) | {"video": video}
            log(f"  memory {row.label} {video} {side}: {entry}")
            out.append(entry)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.ablation = args.ablation or args.only_ablation
    args.memory = args.memory or args.memory_only
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for, but CUDA is not available")
    precisions = args.precision.split(",")
    for p in precisions:
        if p not in ("fp32", "bf16", "fp16"):
            raise SystemExit(f"unknown precision {p!r}")
        if p != "fp32" and device.type != "cuda":
            raise SystemExit(f"{p} autocast is measured on CUDA only (the CPU path is fp32)")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        # "fp32" means fp32: no TF32 in matmuls or convolutions (reduced precision is what bf16/fp16 rows are for)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    overrides = {}
    if args.quick:
        args.frames, args.height, args.width, args.size = 8, 96, 160, 96
        args.repeats = 1
        overrides = dict(hidden_dim=64, dim_feedforward=128, num_queries=20, bottleneck_channels=8)
        args.sweep_windows = "2,4"
    if args.probe:
        return _probe(args, device, args.size or None, overrides)
    videos = {"all": ["synthetic", *REAL_VIDEOS], "real": list(REAL_VIDEOS)}.get(
        args.videos, args.videos.split(",")
    )
    rows = [ROWS[r.strip().lower()] for r in args.rows.split(",")]
    weights = dict(w.split("=", 1) for w in args.weights)
    warmup = args.warmup if args.warmup is not None else (2 if device.type == "cuda" else 0)
    size = args.size or None
    out_dir = args.out or HERE / "results" / ("quick" if args.quick else device.type)
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "log.txt"
    log_file = log_path.open("a")

    def log(msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    report = {
        "env": environment(device),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "config": {
            "frames": args.frames,
            "height": args.height,
            "width": args.width,
            "size": size,
            "repeats": args.repeats,
            "warmup_full_runs": warmup,
            "modes": args.modes,
            "channels_last": args.channels_last,
            "compile": args.compile,
            "instances": args.instances,
            "quick": args.quick,
        },
        "models": {},
        "rows": [],
        "precision_iou": [],
        "decode_fps": {},
    }
    log(f"environment: {report['env']}")
    paths = {v: prepare_video(v, args.frames, args.height, args.width, args.cache) for v in videos}
    decoded = {v: decode_all(p) for v, p in paths.items()}
    for v, p in paths.items():
        report["decode_fps"][v] = decode_fps(p)
    log(f"videos: {[str(p) for p in paths.values()]}; decode FPS {report['decode_fps']}")
    modes = args.modes.split(",")
    for row in rows:
        model, info = build_model(
            row.arch,
            device,
            seed=args.seed,
            weights=weights.get(row.arch),
            calib_frames=decoded[videos[0]][: row.window],
            size=size,
            instances=args.instances,
            **overrides,
        )
        _apply_gpu_options(model, args, device)
        report["models"][row.key] = info
        log(f"{row.label}: model {info}")
        if args.memory:
            report.setdefault("memory", []).extend(measure_memory(model, row, videos[0], args, log))
            _write(report, out_dir)
        for video in videos if not (args.only_ablation or args.memory_only) else []:
            if video != videos[0] and not weights.get(row.arch) and args.instances > 0:
                # Random heads give as many instances as asked only on the video they were calibrated on.
                calib = calibrate_random_heads(model, decoded[video][: row.window], size, args.instances)
                report["models"][f"{row.key}/{video}"] = {**info, **calib}
            fp32_result = None
            for precision in precisions:
                entries = measure_row(
                    model,
                    row,
                    video,
                    paths[video],
                    decoded[video],
                    precision=precision,
                    modes=modes,
                    repeats=args.repeats,
                    warmup=warmup,
                    size=size,
                    baseline=not args.no_baseline,
                    breakdown=not args.no_breakdown,
                    log=log,
                )
                for e in entries:
                    result = e.pop("_result")
                    if precision == "fp32" and fp32_result is None:
                        fp32_result = result
                    elif precision != "fp32" and fp32_result is not None and e["mode"] == modes[0]:
                        iou = mask_iou_between(fp32_result, result)
                        report["precision_iou"].append(
                            {"row": row.key, "video": video, "precision": precision, **iou}
                        )
                        e["mask_iou_vs_fp32"] = round(iou["mask_iou"], 4)
                    report["rows"].append(e)
                    log(
                        f"{e['name']} {precision}: {e['fps']:.3f} FPS, baseline {e.get('baseline_fps')}, "
                        f"speed-up {e.get('speedup')}, outputs {e.get('outputs')}"
                    )
                _write(report, out_dir)
        if args.ablation:
            video = videos[0]
            report.setdefault("ablation", []).extend(
                run_ablation(
                    model,
                    row,
                    paths[video],
                    decoded[video],
                    size=size,
                    precision=precisions[0],
                    repeats=args.repeats,
                    log=log,
                )
            )
            _write(report, out_dir)
        if args.sweep and row is rows[0]:
            sweep_video = videos[0]
            windows = [int(w) for w in args.sweep_windows.split(",") if int(w) <= args.frames]
            report["sweep"] = run_sweep(
                model,
                paths[sweep_video],
                decoded[sweep_video],
                windows,
                args.sweep_strides.split(","),
                size=size,
                precision=precisions[0],
                repeats=max(1, min(args.repeats, 3)),
                baseline=args.sweep_baseline,
                log=log,
            )
            report["sweep_info"] = {"row": row.key, "video": sweep_video, "precision": precisions[0]}
            plot = plot_sweep(
                report["sweep"],
                out_dir / "fps_sweep.png",
                f"{row.label.split()[0]}, {args.frames} frames {args.height}x{args.width}, "
                f"{device.type} {precisions[0]}",
            )
            report["sweep_plot"] = str(plot) if plot else "matplotlib not installed: no plot"
        del model
    report["env"]["loadavg_end"] = list(os.getloadavg())
    _write(report, out_dir)
    log(f"wrote {out_dir / 'results.json'} and {out_dir / 'results.md'}")
    return 0


def _apply_gpu_options(model, args, device: torch.device) -> None:
    """CUDA-only speed options; nothing here ever runs on the CPU (the fp32 CPU path stays the reference's)."""
    if device.type != "cuda":
        if args.compile != "off" or args.channels_last == "on":
            print("note: --compile / --channels-last apply to CUDA only; ignored on", device.type)
        return
    if args.channels_last == "off":
        model.backbone.channels_last = False
    if args.compile != "off":
        model.backbone.fuse_frozen_bn()
        model.backbone.to(
            memory_format=torch.channels_last if args.channels_last != "off" else torch.contiguous_format
        )
        compiled = torch.compile(
            model.backbone, mode=None if args.compile == "default" else args.compile, dynamic=False
        )
        # The segmenter folds FrozenBN at every run; folded once above, keep the compiled graph's buffers.
        compiled.fuse_frozen_bn = lambda: None
        model.backbone = compiled


def _write(report: dict, out_dir: Path) -> None:
    tmp = out_dir / "results.json.tmp"
    tmp.write_text(json.dumps(report, indent=1, default=_json_default))
    tmp.replace(out_dir / "results.json")
    (out_dir / "results.md").write_text(markdown(report))


def _json_default(o):
    if dataclasses.is_dataclass(o):
        return dataclasses.asdict(o)
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    return str(o)


if __name__ == "__main__":
    sys.exit(main())
