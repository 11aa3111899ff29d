#!/usr/bin/env python
"""Runtimes on the CPU: eager PyTorch against onnxruntime and OpenVINO, fp32 and int8, end to end.

Every variant runs through the same public call, ``ifc_sdk.segment_video(mp4, model, window=T, stride=1)``:
the eager `IFC`, or the runtime model `ifc_sdk.load_model(EXPORT_DIR)` returns for a folder written by
`ifc_sdk.export` (same windowing, tracking and RLE output; only the two graphs run elsewhere). Rows are the
paper's R50 T=5 and T=36 at 360p (36-frame 360x640 synthetic mp4, full-size R50 with random weights whose
FrozenBN statistics come from the video's activations, as the reference fixtures' weights were made, so that
activations have a trained network's ranges, and whose heads are calibrated as in fps.py on the first 5
frames; one export per variant serves both rows); the variants of a row are interleaved within each repeat, so
a change of machine load hits all of them, and each variant's outputs are compared with eager fp32 of the same run (tracks, labels
and order, class probabilities, mask IoU of tracks paired by Hungarian matching).

The int8 variants are calibrated on another synthetic video (seed 1), never on the benchmark video.
``--demo-accuracy`` adds the int8 accuracy of the bundled ``shapes-demo`` model at its recommended settings:
YouTube-VIS AP on the 5 unseen synthetic seeds of its manifest (``ifc-sdk synth``, 20 videos each) for fp32
and each variant (int8 calibrated on 12 synthetic videos of another seed), and mask IoU of int8 against fp32
on the real clips of ``../shared/fixtures/videos`` (tracks paired by Hungarian matching; matched: IoU >= 0.5).

Examples::

    python benchmarks/runtimes.py --out benchmarks/results/cpu_runtimes
    python benchmarks/runtimes.py --rows r50_t36 --variants eager,openvino-int8 --repeats 1
    python benchmarks/runtimes.py --only-demo-accuracy --out benchmarks/results/cpu_runtimes_accuracy
"""

from __future__ import annotations

if not __package__:  # run by path: import `benchmarks` as a package from the repository root
    import _script  # noqa: F401

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import ifc_sdk
from benchmarks.compare import mask_iou_between
from benchmarks.environment import environment
from benchmarks.harness import cpu_seconds
from benchmarks.models import QUICK_OVERRIDES, build_model, calibrate_random_heads
from benchmarks.rows import ROWS
from benchmarks.videos import SHARED_VIDEOS, decode_all, prepare_video, synthetic_frames, write_mp4

HERE = Path(__file__).resolve().parent

# variant -> (export format, int8); "eager" runs the IFC itself.
VARIANTS = {
    "eager": (None, False),
    "onnx": ("onnx", False),
    "onnx-int8": ("onnx", True),
    "openvino": ("openvino", False),
    "openvino-int8": ("openvino", True),
}
CALIBRATION_WINDOW = 5  # frames the random heads are calibrated on (the T=5 row's first window)
# The unseen generator seeds the demo's reported AP uses (weights_manifest/shapes-demo.json, "reported"), and
# another one for the int8 calibration videos (as `ifc-sdk synth` makes them).
DEMO_SEEDS = (271828, 314159, 161803, 141421, 173205)
DEMO_CALIBRATION_SEED, DEMO_CALIBRATION_VIDEOS = 6002, 12


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


@torch.no_grad()
def trained_like_frozen_bn(model, frames: list[np.ndarray], seed: int = 0) -> dict:
    """Set every FrozenBN of a random backbone from the activations of ``frames``, as the reference fixtures'
    weights were made: each convolution's output normalised to mean 0 and variance 1, then scaled by a gamma
    in [0.6, 1.4] ([0.15, 0.45] for the last one of each bottleneck) with a small random beta.

    Activations then have the ranges of a trained network instead of growing block after block (identity
    FrozenBN): speed does not depend on the weights, but int8 accuracy depends on those ranges."""
    from ifc_sdk.inference.preprocess import to_tensor
    from ifc_sdk.modeling.backbone import BottleneckBlock, ConvNorm

    rng = torch.Generator().manual_seed(seed)
    last = {id(m.conv3) for m in model.modules() if isinstance(m, BottleneckBlock)}

    def set_statistics(conv: ConvNorm, inputs) -> None:
        y = torch.nn.functional.conv2d(inputs[0], conv.weight, None, conv.stride, conv.padding, conv.dilation)
        low, high = (0.15, 0.45) if id(conv) in last else (0.6, 1.4)
        conv.norm.running_mean.copy_(y.mean((0, 2, 3)))
        conv.norm.running_var.copy_(y.var((0, 2, 3)) - conv.norm.eps).clamp_(min=1e-6)
        conv.norm.weight.copy_(torch.empty_like(conv.norm.weight).uniform_(low, high, generator=rng))
        conv.norm.bias.copy_(0.1 * torch.randn(conv.norm.bias.shape, generator=rng))

    hooks = [m.register_forward_pre_hook(set_statistics) for m in model.modules() if isinstance(m, ConvNorm)]
    try:
        model.backbone_features(model.normalize(to_tensor(np.stack(frames), "cpu")))
    finally:
        for hook in hooks:
            hook.remove()
    return {"frozen_bn": f"from the activations of {len(frames)} frames (gamma 0.6-1.4, last 0.15-0.45)"}


def export_variants(
    model, variants: list[str], calib: Path, cache: Path, *, size: int, threads: int, reuse: bool, log
) -> dict:
    """Export ``model`` once per runtime variant into ``cache`` (``reuse``: keep an export already there, of
    the same seeded model) and load each: ``{variant: (model, info)}``."""
    loaded = {}
    for name in variants:
        fmt, int8 = VARIANTS[name]
        if fmt is None:
            loaded[name] = (model, {})
            continue
        out = cache / name
        start = time.perf_counter()
        if reuse and ifc_sdk.export.is_export_dir(out):
            info, seconds = ifc_sdk.export.ExportInfo.read(out), None
            log(f"reusing the export {out}")
        else:
            info = ifc_sdk.export(
                model,
                format=fmt,
                out=out,
                int8=int8,
                calib=calib if int8 else None,
                calib_size=size,
                overwrite=True,
                check=False,
            )
            seconds = round(time.perf_counter() - start, 1)
            log(f"exported {name} in {seconds:.0f} s")
        runtime = ifc_sdk.export.load_exported(out, num_threads=threads)
        loaded[name] = (runtime, {"export_seconds": seconds, "quantization": info.quantization})
    return loaded


def compare_with_eager(eager, other) -> dict:
    """Outputs of ``other`` against eager fp32: tracks, labels and order, class probabilities, mask IoU."""
    preds_a = eager.predictions(multi_class=True, threshold=0.01)
    preds_b = other.predictions(multi_class=True, threshold=0.01)
    out = mask_iou_between(eager, other)  # tracks, other_tracks, mask_iou, mask_iou_mean
    out["labels_and_order_equal"] = [(p.label, p.track_id) for p in preds_a] == [
        (p.label, p.track_id) for p in preds_b
    ]
    if out["tracks"] == out["other_tracks"] and eager.tracks:
        probs_a = np.stack([t.class_probs for t in eager.tracks])
        probs_b = np.stack([t.class_probs for t in other.tracks])
        out["max_class_prob_diff"] = float(np.abs(probs_a - probs_b).max())
    return out


def run_row(row, video: Path, loaded: dict, args, log) -> dict:
    """Interleaved end-to-end runs of every variant on ``video``; FPS and accuracy against eager."""
    times: dict[str, list[float]] = {name: [] for name in loaded}
    cpu: dict[str, list[float]] = {name: [] for name in loaded}
    results: dict[str, object] = {}

    def once(name: str):
        model = loaded[name][0]
        start, cpu0 = time.perf_counter(), cpu_seconds()
        result = ifc_sdk.segment_video(
            video, model, window=row.window, stride=row.stride, size=args.height, progress=False
        )
        return time.perf_counter() - start, cpu_seconds() - cpu0, result

    for _ in range(args.warmup):
        for name in loaded:
            once(name)
    for r in range(args.repeats):
        for name in loaded:
            seconds, cpu_time, results[name] = once(name)
            times[name].append(seconds)
            cpu[name].append(cpu_time)
            log(f"{row.label} {name} repeat {r + 1}: {args.frames / seconds:.2f} FPS, CPU {cpu_time:.1f} s")
    eager_fps = [args.frames / t for t in times["eager"]] if "eager" in times else None
    out = {}
    for name in loaded:
        fps = [args.frames / t for t in times[name]]
        entry = {
            "fps": statistics.median(fps),
            "fps_min": min(fps),
            "fps_max": max(fps),
            "seconds": times[name],
            "cpu_seconds": cpu[name],
            **loaded[name][1],
        }
        if eager_fps:
            entry["speedup"] = entry["fps"] / statistics.median(eager_fps)
            entry["cpu_speedup"] = statistics.median(cpu["eager"]) / statistics.median(cpu[name])
            entry["paired_speedups"] = [a / b for a, b in zip(fps, eager_fps)]
            if name != "eager":
                entry["vs_eager"] = compare_with_eager(results["eager"], results[name])
        out[name] = entry
    return out


# ------------------------------------------------------------------------------------------ demo accuracy
def demo_accuracy(cache: Path, args, log) -> dict:
    """shapes-demo: AP of fp32 and int8 on synthetic datasets of unseen seeds; int8 mask IoU against fp32 on
    the real clips."""
    from ifc_sdk.api import inference_defaults
    from ifc_sdk.data.synthetic import generate_dataset
    from ifc_sdk.evaluation.predict import predict_dataset
    from ifc_sdk.evaluation.ytvis import evaluate_ytvis

    model = ifc_sdk.load_model("shapes-demo", device="cpu")
    settings = inference_defaults("shapes-demo")  # window 5, stride 1, its recommended size
    calib_data = cache / f"demo_calib_{DEMO_CALIBRATION_SEED}"
    if not calib_data.exists():
        generate_dataset(calib_data, num_videos=DEMO_CALIBRATION_VIDEOS, seed=DEMO_CALIBRATION_SEED)
    calib = calib_data / "JPEGImages"  # a folder of videos: the calibration windows are shared out over them
    variants = {name: VARIANTS[name] for name in args.variants if name != "eager"}
    folders = {"eager": None}
    for name, (fmt, int8) in variants.items():
        folders[name] = cache / f"demo-{name}"
        ifc_sdk.export(
            model,
            format=fmt,
            out=folders[name],
            int8=int8,
            calib=calib if int8 else None,
            calib_size=settings["size"],
            window=settings["window"],
            overwrite=True,
            check=False,
        )
        log(f"demo: exported {name}")
    ap: dict[str, list[float]] = {name: [] for name in folders}
    for seed in DEMO_SEEDS:
        data = cache / f"demo_eval_{seed}"
        if not data.exists():
            generate_dataset(data, num_videos=args.demo_videos, seed=seed)
        for name, folder in folders.items():
            results = cache / f"demo_results_{seed}_{name}.json"
            predict_dataset(
                data,
                results,
                model=model if folder is None else str(folder),
                window=settings["window"],
                stride=settings["stride"],
                size=settings["size"],
                device="cpu",
                resume=False,
                progress=False,
            )
            ap[name].append(evaluate_ytvis(data / "annotations.json", results)["AP"])
            log(f"demo: seed {seed} {name} AP {ap[name][-1]:.4f}")
    out = {"seeds": list(DEMO_SEEDS), "videos_per_seed": args.demo_videos, "settings": settings, "ap": ap}
    out["mean_ap"] = {name: float(np.mean(v)) for name, v in ap.items()}
    real = {}
    clips = sorted(SHARED_VIDEOS.glob("*.mp4")) if SHARED_VIDEOS.exists() else []
    for clip in clips:
        kwargs = dict(
            window=settings["window"], stride=settings["stride"], size=settings["size"], progress=False
        )
        base = ifc_sdk.segment_video(clip, model, **kwargs)
        # The fp32 model's own noise floor: the same clip with every pixel moved by -1, 0 or +1 grey level.
        rng = np.random.default_rng(0)
        noisy = [
            np.clip(f.astype(np.int16) + rng.integers(-1, 2, f.shape), 0, 255).astype(np.uint8)
            for f in decode_all(clip)
        ]
        real.setdefault(clip.stem, {})["eager, input +-1 grey"] = mask_iou_between(
            base, ifc_sdk.segment_video(noisy, model, **kwargs)
        )
        for name, folder in folders.items():
            if folder is None or not VARIANTS[name][1]:
                continue
            runtime = ifc_sdk.export.load_exported(folder, num_threads=args.threads)
            other = ifc_sdk.segment_video(clip, runtime, **kwargs)
            real.setdefault(clip.stem, {})[name] = mask_iou_between(base, other)
            log(f"demo: {clip.stem} {name} {real[clip.stem][name]}")
    out["real_clips_vs_fp32"] = real
    return out


# ------------------------------------------------------------------------------------------ report
def _speed_cells(entry: dict) -> str:
    paired = entry.get("paired_speedups")
    cells = f"{entry['fps']:.2f} [{entry['fps_min']:.2f}-{entry['fps_max']:.2f}]"
    if not paired:
        return cells + " | - | - | -"
    return (
        f"{cells} | {entry['speedup']:.2f}x "
        f"| {statistics.median(paired):.2f}x [{min(paired):.2f}-{max(paired):.2f}] "
        f"| {statistics.median(entry['cpu_seconds']):.1f} s ({entry['cpu_speedup']:.2f}x)"
    )


def _accuracy_cells(cmp: dict) -> str:
    if not cmp:
        return "- | - | - | -"
    prob = f"{cmp['max_class_prob_diff']:.1e}" if "max_class_prob_diff" in cmp else "-"
    return (
        f"{cmp['other_tracks']} / {cmp['tracks']} | {'yes' if cmp['labels_and_order_equal'] else 'no'} "
        f"| {prob} | {cmp['mask_iou']:.4f} / {cmp['mask_iou_mean']:.4f}"
    )


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [
        "# Runtimes on the CPU",
        "",
        f"{env['device_name']}, torch {env['torch']}, runtime threads {report['threads']}; load average "
        f"{report['loadavg_start']} at the start, {report['loadavg_end']} at the end.",
    ]
    if report["rows"]:
        lines += [
            f"End to end from a {report['frames']}-frame {report['height']}x{report['width']} mp4, median of "
            f"{report['repeats']} interleaved runs.",
            "",
            "| row | variant | FPS [min-max] | vs eager (medians) | paired [range] | CPU time (vs eager) "
            "| tracks / eager | labels+order as eager | max class prob diff | mask IoU vs eager (weighted / mean) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
    for key, variants in report["rows"].items():
        for name, entry in variants.items():
            lines.append(
                f"| {ROWS[key].label} | {name} | {_speed_cells(entry)} "
                f"| {_accuracy_cells(entry.get('vs_eager', {}))} |"
            )
    demo = report.get("demo_accuracy")
    if demo:
        lines += [
            "",
            "## shapes-demo int8 accuracy",
            "",
            "| variant | AP per seed | mean AP |",
            "|---|---|---|",
        ]
        for name, values in demo["ap"].items():
            lines.append(
                f"| {name} | {', '.join(f'{v:.4f}' for v in values)} | {demo['mean_ap'][name]:.4f} |"
            )
        lines += [
            "",
            "| clip | variant | tracks fp32 / int8 | matched (IoU >= 0.5) | matched tracks' mask IoU mean "
            "[min] | all fp32 tracks' IoU, weighted / mean (unmatched 0) |",
            "|---|---|---|---|---|---|",
        ]
        for clip, per in demo["real_clips_vs_fp32"].items():
            for name, m in per.items():
                matched = f"{m['matched_iou_mean']:.4f} [{m['matched_iou_min']:.4f}]" if m["matched"] else "-"
                lines.append(
                    f"| {clip} | {name} | {m['tracks']} / {m['other_tracks']} | {m['matched']} | {matched} "
                    f"| {m['mask_iou']:.4f} / {m['mask_iou_mean']:.4f} |"
                )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default="r50_t5,r50_t36", help="rows of fps.py (default: r50_t5,r50_t36)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"subset of {', '.join(VARIANTS)}")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per variant and row (default: 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed full runs per variant and row (default: 1)")
    p.add_argument("--threads", type=int, default=2, help="torch and runtime threads (default: 2)")
    p.add_argument("--instances", type=int, default=20, help="instances per clip of the random model")
    p.add_argument("--demo-accuracy", action="store_true", help="also the shapes-demo int8 accuracy")
    p.add_argument("--only-demo-accuracy", action="store_true", help="only the shapes-demo int8 accuracy")
    p.add_argument("--demo-videos", type=int, default=20, help="videos per synthetic seed (default: 20)")
    p.add_argument("--quick", action="store_true", help="smoke run: 8 frames of 96x160, reduced-width models")
    p.add_argument("--cache", type=Path, default=HERE / ".cache", help="videos and exports")
    p.add_argument("--keep-exports", action="store_true", help="keep the exports in the cache and reuse them")
    p.add_argument("--out", type=Path, default=HERE / "results" / "cpu_runtimes")
    args = p.parse_args(argv)
    args.rows = [r for r in args.rows.split(",") if r]
    if len({ROWS[r].arch for r in args.rows if r in ROWS}) > 1:
        p.error("rows of one architecture per run (the variants are exported once)")
    args.variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in args.variants if v not in VARIANTS] + [r for r in args.rows if r not in ROWS]
    if unknown:
        p.error(f"unknown rows/variants: {unknown}")
    args.frames, args.height, args.width = (8, 96, 160) if args.quick else (36, 360, 640)
    if args.quick:
        args.repeats, args.warmup, args.demo_videos = 1, 0, 2
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    log_file = (args.out / "log.txt").open("a", encoding="utf-8")

    def log(msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')} load {_load()}] {msg}"
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    report = {
        "environment": environment(torch.device("cpu")),
        "threads": args.threads,
        "repeats": args.repeats,
        "frames": args.frames,
        "height": args.height,
        "width": args.width,
        "loadavg_start": _load(),
        "rows": {},
    }
    cache = args.cache / "runtimes"
    cache.mkdir(parents=True, exist_ok=True)
    if not args.only_demo_accuracy:
        video = prepare_video("synthetic", args.frames, args.height, args.width, args.cache)
        calib = cache / f"calib_seed1_{args.frames}f_{args.height}x{args.width}.mp4"
        if not calib.exists():
            write_mp4(synthetic_frames(args.frames, args.height, args.width, seed=1), calib)
        frames = decode_all(video)
        # One model (and one export per variant) for all rows: heads calibrated on the first 5 frames.
        arch = ROWS[args.rows[0]].arch
        model, info = build_model(
            arch, torch.device("cpu"), instances=0, **(QUICK_OVERRIDES if args.quick else {})
        )
        info["weights"] = "random (seed 0)"
        info.update(trained_like_frozen_bn(model, frames[:2]))
        info.update(calibrate_random_heads(model, frames[:CALIBRATION_WINDOW], None, args.instances))
        report["model"] = info
        folder = cache / f"{arch}{'_quick' if args.quick else ''}_{args.instances}"
        loaded = export_variants(
            model,
            args.variants,
            calib,
            folder,
            size=args.height,
            threads=args.threads,
            reuse=args.keep_exports,
            log=log,
        )
        for key in args.rows:
            report["rows"][key] = run_row(ROWS[key], video, loaded, args, log)
        del loaded
        if not args.keep_exports:
            shutil.rmtree(folder, ignore_errors=True)  # ~1 GB of graphs
    if args.demo_accuracy or args.only_demo_accuracy:
        report["demo_accuracy"] = demo_accuracy(cache, args, log)
    report["loadavg_end"] = _load()
    (args.out / "results.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (args.out / "results.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
