"""Stream a video: print each frame's instances as soon as no later window can change them.

Memory stays flat however long the video is. Class scores are final only at the end of the stream.

    python examples/stream_frames.py [VIDEO] [--model shapes-demo]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ifc_sdk
from ifc_sdk.api import inference_defaults
from ifc_sdk.cli.demo import EXAMPLE_VIDEO

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("video", nargs="?", type=Path, default=EXAMPLE_VIDEO)
parser.add_argument("--model", default="shapes-demo")
args = parser.parse_args()

stream = ifc_sdk.segment_video(
    args.video, args.model, stream=True, progress=False, **inference_defaults(args.model)
)
for frame in stream:
    t = "-" if frame.timestamp is None else f"{frame.timestamp:.2f}s"
    print(f"frame {frame.index} ({t}): tracks {frame.track_ids}")
for track in stream.tracks:  # final class probabilities, known once the stream is exhausted
    probs = track.class_probs
    print(f"track {track.id}: class {int(probs[:-1].argmax())} p={probs[:-1].max():.2f}")
