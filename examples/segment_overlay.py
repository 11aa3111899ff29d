"""Segment a video and save an overlay video (default: the bundled example with the bundled demo model).

python examples/segment_overlay.py [VIDEO] [--model shapes-demo] [--out overlay.mp4]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ifc_sdk
from ifc_sdk.api import inference_defaults
from ifc_sdk.cli.demo import EXAMPLE_VIDEO
from ifc_sdk.io.overlay import write_overlay
from ifc_sdk.io.video import open_video

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("video", nargs="?", type=Path, default=EXAMPLE_VIDEO)
parser.add_argument("--model", default="shapes-demo")
parser.add_argument("--out", type=Path, default=Path("overlay.mp4"))
args = parser.parse_args()

result = ifc_sdk.segment_video(args.video, args.model, **inference_defaults(args.model))
with open_video(args.video) as frames:
    write_overlay(result, frames, args.out, fps=result.fps)
for track in result.tracks:
    print(f"track {track.id}: {track.label_name} {track.score:.2f}, {int(track.present.sum())} frames")
print(f"overlay: {args.out.resolve()}")
