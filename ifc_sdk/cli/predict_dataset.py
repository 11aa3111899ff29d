"""``ifc-sdk predict-dataset``: segment every video of a YouTube-VIS split and write a submission.

Several GPUs or machines: ``torchrun --nproc_per_node N -m ifc_sdk.cli predict-dataset ...`` (each process a
shard of the videos; rank 0 merges).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from ifc_sdk.cli.segment import add_inference_arguments


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict-dataset",
        help="run a model over every video of a YouTube-VIS split (results.json + submission zip)",
        description="Segment every video of a dataset split and write YouTube-VIS results (one entry per track "
        "and class above --threshold, as the reference's evaluation) plus <out stem>.zip for the evaluation "
        "server. Finished videos are kept in <out>.parts/ and skipped when the command is run again. "
        "Layouts: DIR/<split>.json + DIR/<split>/JPEGImages (YouTube-VIS 2019), DIR/<split>/instances.json + "
        "DIR/<split>/JPEGImages (2021), DIR/annotations.json + DIR/JPEGImages (no --split; e.g. `ifc-sdk "
        "synth`). Under torchrun each process takes a shard of the videos.",
    )
    p.add_argument("--data", type=Path, required=True, help="dataset folder (or an annotation JSON)")
    p.add_argument("--split", default=None, help="split name, e.g. valid (default: DIR/annotations.json)")
    add_inference_arguments(p)
    p.add_argument(
        "--out",
        type=Path,
        default=Path("results.json"),
        help="results JSON (default: results.json); the zip goes beside it as <stem>.zip, finished videos to "
        "<out>.parts/ (nothing else there is touched)",
    )
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N videos")
    p.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="skip videos finished by an earlier run with the same settings (default: on)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=0.01,
        help="class probability a prediction must exceed (default: 0.01)",
    )
    p.add_argument(
        "--single-class",
        action="store_true",
        help="one entry per track (its top class) instead of one per track and class",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ifc_sdk.evaluation.predict import predict_dataset

    start = time.perf_counter()
    out = predict_dataset(
        args.data,
        args.out,
        split=args.split,
        model=args.model,
        window=args.window,
        stride=args.stride,
        size=args.size,
        device=args.device,
        precision=args.precision,
        mask_resize=args.mask_resize,
        limit=args.limit,
        resume=args.resume,
        multi_class=not args.single_class,
        threshold=args.threshold,
        progress=not args.quiet,
    )
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 wrote the merged file
        print(f"wrote {out} and {out.with_suffix('.zip')} in {time.perf_counter() - start:.1f} s")
    return 0
