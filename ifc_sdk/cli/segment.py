"""``ifc-sdk segment``: segment videos or frame folders and write results, optionally an overlay video."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ifc_sdk.errors import IFCError

DEFAULT_FORMATS = ("ytvis",)


def add_inference_arguments(parser: argparse.ArgumentParser, *, default_model: str = "r50") -> None:
    """Options shared by the commands that run a model over videos."""
    parser.add_argument(
        "--model",
        default=default_model,
        help=f"manifest name, hf://owner/repo, .pth, .safetensors or model folder (default: {default_model})",
    )
    parser.add_argument("--window", type=int, default=None, help="frames per window (default: 5)")
    parser.add_argument("--stride", type=int, default=1, help="frames between window starts (default: 1)")
    parser.add_argument(
        "--size",
        type=int,
        default=360,
        help="short side frames are resized to; 0 keeps the source size (default: 360)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")


def resolve_inference_arguments(args: argparse.Namespace) -> None:
    """Fill --window/--stride/--size left unset with the model's recommended settings."""
    from ifc_sdk.api import inference_defaults

    for key, value in inference_defaults(args.model).items():
        if getattr(args, key) is None:
            setattr(args, key, value)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "segment",
        help="segment and track the instances in videos",
        description="Segment and track every object instance in each video (a video file "
        "or a folder of frames) and write the results to OUT/<name>/.",
    )
    p.add_argument("sources", nargs="+", metavar="VIDEO_OR_DIR")
    add_inference_arguments(p)
    p.add_argument("--out", type=Path, default=Path("ifc_output"), help="output folder (default: ifc_output)")
    p.add_argument(
        "--format",
        dest="formats",
        action="append",
        choices=("ytvis", "coco", "mots", "png"),
        help="result format, repeatable (default: ytvis)",
    )
    p.add_argument("--overlay", action="store_true", help="also write an overlay video (overlay.mp4)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def segment_one(source: str, model, args, out_dir: Path) -> dict[str, Path]:
    """Segment one source and write its outputs into ``out_dir``; returns what was written."""
    from ifc_sdk.api import segment_video
    from ifc_sdk.io.export import export
    from ifc_sdk.io.overlay import write_overlay
    from ifc_sdk.io.video import open_video

    result = segment_video(
        source,
        model,
        window=args.window,
        stride=args.stride,
        size=args.size or None,
        precision=args.precision,
        progress=not args.quiet,
    )
    written = export(result, out_dir, args.formats or DEFAULT_FORMATS)
    if args.overlay:
        with open_video(source) as reader:
            written["overlay"] = write_overlay(result, reader, out_dir / "overlay.mp4", fps=reader.fps)
    return written


def run(args: argparse.Namespace) -> int:
    from ifc_sdk.api import load_model
    from ifc_sdk.inference.predictor import check_window

    resolve_inference_arguments(args)
    check_window(args.window, args.stride)
    model = load_model(args.model, device=args.device)
    failures = 0
    start = time.perf_counter()
    for source in args.sources:
        out_dir = args.out / Path(source.rstrip("/")).stem
        try:
            written = segment_one(source, model, args, out_dir)
        except IFCError as exc:
            failures += 1
            print(f"ifc-sdk segment: error: {exc}", file=sys.stderr)
            continue
        for kind, path in written.items():
            print(f"{source}: {kind} -> {path}")
    done = len(args.sources) - failures
    print(
        f"{done}/{len(args.sources)} video(s) segmented in {time.perf_counter() - start:.1f} s; "
        f"results under {args.out}"
    )
    return 1 if failures else 0
