"""``ifc-sdk demo``: segment the bundled example video with the bundled demo model, offline."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets"
EXAMPLE_VIDEO = ASSETS / "shapes_example.mp4"
DEMO_MODEL = "shapes-demo"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="segment the bundled example video with the bundled demo model (offline)",
        description="Runs the bundled shapes-demo model (trained here on synthetic videos) over a video, by default "
        "the bundled example, and writes an overlay video and YouTube-VIS / COCO-RLE JSON results.",
    )
    p.add_argument(
        "--video", type=Path, default=EXAMPLE_VIDEO, help="video to segment (default: the bundled example)"
    )
    p.add_argument("--out", type=Path, default=Path("ifc_demo"), help="output folder (default: ifc_demo)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ifc_sdk.api import inference_defaults, load_model, segment_video
    from ifc_sdk.io.export import export

    settings = inference_defaults(DEMO_MODEL)
    model = load_model(DEMO_MODEL, device=args.device)
    start = time.perf_counter()
    result = segment_video(args.video, model, keep_frames=True, **settings)
    elapsed = time.perf_counter() - start
    written = export(result, args.out, ["ytvis", "coco"])
    written["overlay"] = result.save_overlay(args.out / "overlay.mp4")  # draws on the kept frames
    print(
        f"{args.video.name}: {result.num_frames} frames {result.size[1]}x{result.size[0]}, "
        f"{len(result.tracks)} tracks in {elapsed:.1f} s (window {settings['window']}, stride {settings['stride']}, "
        f"size {settings['size']})"
    )
    for track in sorted(result.tracks, key=lambda t: -t.score):
        frames = int(track.present.sum())
        print(f"  track {track.id}: {track.label_name} (score {track.score:.2f}), visible in {frames} frames")
    for kind, path in written.items():
        print(f"{kind}: {path.resolve()}")
    return 0
