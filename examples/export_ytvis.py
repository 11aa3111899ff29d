"""Segment a video and write YouTube-VIS results JSON (one entry per track and class, as the reference).

python examples/export_ytvis.py [VIDEO] [--model shapes-demo] [--video-id 1] [--out results.json]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ifc_sdk
from ifc_sdk.api import inference_defaults
from ifc_sdk.cli.demo import EXAMPLE_VIDEO
from ifc_sdk.io.export import save_ytvis_json, to_ytvis_results

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("video", nargs="?", type=Path, default=EXAMPLE_VIDEO)
parser.add_argument("--model", default="shapes-demo")
parser.add_argument("--video-id", type=int, default=1)
parser.add_argument("--out", type=Path, default=Path("results.json"))
args = parser.parse_args()

result = ifc_sdk.segment_video(args.video, args.model, **inference_defaults(args.model))
entries = to_ytvis_results(result, args.video_id, multi_class=True, threshold=0.01)
save_ytvis_json(entries, args.out)
print(f"{len(entries)} entries ({len(result.tracks)} tracks) -> {args.out.resolve()}")
