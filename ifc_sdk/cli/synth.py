"""``ifc-sdk synth``: write a synthetic YouTube-VIS or COCO dataset of moving shapes."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from ifc_sdk.data.synthetic import DEFAULT_FRAMES, DEFAULT_SIZE, generate_dataset
from ifc_sdk.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``synth`` command."""
    parser = subparsers.add_parser(
        "synth",
        help="generate a synthetic video instance segmentation dataset",
        description="Render videos of moving, occluding shapes (5 classes) and write them in YouTube-VIS format "
        "(annotations.json + JPEGImages/) or COCO format (annotations.json + images/). "
        "The same seed gives the same dataset.",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder (must not exist or be empty)")
    parser.add_argument(
        "--videos", type=int, required=True, help="number of videos (images for --format coco)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--format", choices=("ytvis", "coco"), default="ytvis", help="output format (default: ytvis)"
    )
    parser.add_argument(
        "--frames",
        type=int,
        nargs="+",
        metavar="F",
        default=list(DEFAULT_FRAMES),
        help="frames per video, or MIN MAX for a random length per video "
        f"(default: {DEFAULT_FRAMES[0]} {DEFAULT_FRAMES[1]}; ignored for coco)",
    )
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=list(DEFAULT_SIZE),
        help=f"frame height and width (default: {DEFAULT_SIZE[0]} {DEFAULT_SIZE[1]})",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate the dataset with a progress bar; print where the annotations went."""
    if len(args.frames) > 2:
        raise ConfigError(f"--frames takes one count or MIN MAX, got {len(args.frames)} values")
    frames = args.frames[0] if len(args.frames) == 1 else tuple(args.frames)
    with tqdm(total=args.videos, desc="synth", unit="video") as bar:
        path = generate_dataset(
            args.out,
            num_videos=args.videos,
            seed=args.seed,
            fmt=args.format,
            height=args.size[0],
            width=args.size[1],
            num_frames=frames,
            progress=lambda: bar.update(1),
        )
    print(path)
    return 0
