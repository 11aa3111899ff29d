"""``ifc-sdk export MODEL --format onnx|openvino|torchscript|exported-program --out DIR [--int8 --calib V]``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ifc_sdk.export.metadata import FORMATS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a model to ONNX, OpenVINO, TorchScript or torch.export (optionally int8)",
        description="Write the model's per-frame and per-window graphs (dynamic frame count, window length and "
        "frame size) with their metadata into OUT, run them on a built-in check clip and print the largest "
        "differences from eager PyTorch. Load the folder with `ifc_sdk.load_model(OUT)` or pass it as --model "
        "to `ifc-sdk segment`.",
    )
    p.add_argument(
        "model", metavar="MODEL", help="manifest name, hf://owner/repo, .pth, .safetensors or folder"
    )
    p.add_argument("--format", choices=FORMATS, default="onnx", help="graph format (default: onnx)")
    p.add_argument("--out", type=Path, required=True, help="output folder (other files in it are kept)")
    p.add_argument(
        "--int8",
        action="store_true",
        help="post-training static int8 quantization for the CPU (onnx: onnxruntime, openvino: NNCF)",
    )
    p.add_argument(
        "--calib",
        type=Path,
        metavar="VIDEO_OR_DIR",
        help="calibration video, frame folder, or folder of videos / frame folders (e.g. a dataset's "
        "JPEGImages) from the model's domain (required with --int8)",
    )
    p.add_argument(
        "--size",
        type=int,
        help="short side of the calibration frames (default: the model's recommended inference size, "
        "else 360)",
    )
    p.add_argument(
        "--window",
        type=int,
        help="frames per calibration window (default: the model's recommended window, else 5)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an export already in OUT")
    p.add_argument("--no-check", action="store_true", help="skip the comparison with eager PyTorch")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ifc_sdk.api import load_model
    from ifc_sdk.cli.segment import resolve_inference_arguments
    from ifc_sdk.export import export
    from ifc_sdk.export.check import format_check

    model = load_model(args.model, device="cpu")
    resolve_inference_arguments(args, model)
    start = time.perf_counter()
    info = export(
        model,
        format=args.format,
        out=args.out,
        int8=args.int8,
        calib=args.calib,
        calib_size=args.size,
        window=args.window,
        overwrite=args.overwrite,
        check=not args.no_check,
    )
    seconds = time.perf_counter() - start
    print(f"exported {args.model} ({info.format}, {info.precision}) to {args.out} in {seconds:.0f} s:")
    print("  " + ", ".join(info.files))
    if info.check is not None:
        print(format_check(info.check))
    return 0
