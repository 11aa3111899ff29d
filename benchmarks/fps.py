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
    python -m benchmarks.fps --rows r50_t36                   # the same as a module of the checkout
    ifc-sdk bench --rows r50_t36                              # the same through the CLI
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run by path: import `benchmarks` as a package from the repository root
    import _script  # noqa: F401

import argparse
import os
import time
from collections.abc import Callable

import torch

from benchmarks import ablation, memory, sweep, table
from benchmarks.environment import environment, select_device
from benchmarks.kinds import Bench, RowKind
from benchmarks.models import QUICK_OVERRIDES, apply_gpu_options, build_model
from benchmarks.rows import ROWS, Row, parse_precisions, parse_rows
from benchmarks.videos import decode_all, decode_fps, prepare_video, video_names

BENCH_DIR = Path(__file__).resolve().parent

# The kinds of measurement made for each row, in this order (the memory probe first: it saves the weights
# calibrated on the first video, before the table recalibrates them for the others). Add new kinds here.
ROW_KINDS: list[RowKind] = [memory.KIND, table.KIND, ablation.KIND, sweep.KIND]


def parse_args(argv: list[str] | None, prog: str = "fps.py") -> argparse.Namespace:
    """The options of the benchmark and of every kind of measurement in `ROW_KINDS`."""
    p = argparse.ArgumentParser(
        prog=prog,
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
    p.add_argument(
        "--cache", type=Path, default=BENCH_DIR / ".cache", help="where the benchmark mp4s are written"
    )
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
    for kind in ROW_KINDS:  # options of added kinds (the built-in kinds' are above)
        if kind.add_arguments is not None:
            kind.add_arguments(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None, prog: str = "fps.py") -> int:
    """Run the benchmark; ``prog`` is the command name its help and errors show."""
    args = parse_args(argv, prog)
    device = select_device(args)
    precisions = parse_precisions(args.precision, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        # "fp32" means fp32: no TF32 in matmuls or convolutions (reduced precision is what bf16/fp16 rows are for)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    overrides = {}
    if args.quick:
        args.frames, args.height, args.width, args.size = 8, 96, 160, 96
        args.repeats = 1
        overrides = dict(QUICK_OVERRIDES)
        args.sweep_windows = "2,4"
    if args.probe:
        return memory.probe(args, device, args.size or None, overrides)
    rows = parse_rows(args.rows)
    weights = dict(w.split("=", 1) for w in args.weights)
    out_dir = args.out or BENCH_DIR / "results" / ("quick" if args.quick else device.type)
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "log.txt").open("a") as log_file:

        def log(msg: str) -> None:
            line = f"[{time.strftime('%H:%M:%S')}] {msg}"
            print(line, flush=True)
            log_file.write(line + "\n")
            log_file.flush()

        bench = _prepare(args, device, rows, precisions, weights, out_dir, log)
        _run_rows(bench, overrides)
    return 0


def _prepare(
    args: argparse.Namespace,
    device: torch.device,
    rows: list[Row],
    precisions: list[str],
    weights: dict[str, str],
    out_dir: Path,
    log: Callable[[str], None],
) -> Bench:
    """The report's header (environment, command, configuration) and the videos, written and decoded."""
    size = args.size or None
    warmup = args.warmup if args.warmup is not None else (2 if device.type == "cuda" else 0)
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
    videos = video_names(args.videos)
    paths = {v: prepare_video(v, args.frames, args.height, args.width, args.cache) for v in videos}
    decoded = {v: decode_all(p) for v, p in paths.items()}
    for v, p in paths.items():
        report["decode_fps"][v] = decode_fps(p)
    log(f"videos: {[str(p) for p in paths.values()]}; decode FPS {report['decode_fps']}")
    sections = [kind.markdown for kind in ROW_KINDS if kind.markdown is not None]
    # fields in `Bench`'s order, each variable named as its field
    return Bench(
        args,
        device,
        rows,
        videos,
        paths,
        decoded,
        precisions,
        size,
        warmup,
        weights,
        report,
        out_dir,
        log,
        sections,
    )


def _run_rows(bench: Bench, overrides: dict) -> None:
    """Per row: build (and calibrate) its model, then run every wanted kind of measurement with it."""
    args, report = bench.args, bench.report
    for row in bench.rows:
        model, info = build_model(
            row.arch,
            bench.device,
            seed=args.seed,
            weights=bench.weights.get(row.arch),
            calib_frames=bench.decoded[bench.videos[0]][: row.window],
            size=bench.size,
            instances=args.instances,
            **overrides,
        )
        apply_gpu_options(model, args, bench.device)
        report["models"][row.key] = info
        bench.log(f"{row.label}: model {info}")
        for kind in ROW_KINDS:
            if kind.wanted(args):
                kind.run(bench, row, model)
        del model
    report["env"]["loadavg_end"] = list(os.getloadavg())
    bench.save()
    bench.log(f"wrote {bench.out_dir / 'results.json'} and {bench.out_dir / 'results.md'}")


if __name__ == "__main__":
    sys.exit(main())
