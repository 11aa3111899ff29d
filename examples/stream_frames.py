"""Stream a video: print each frame's instances as soon as no later window can change them.

The source can be anything `segment_video` takes: a file, a folder of frames, a glob, an http(s) URL, a network
stream (rtsp://, tcp://, ...), a camera index or "-" for a video piped on stdin. Memory stays flat however long
the source runs; Ctrl-C stops cleanly. Class scores are final only at the end of the stream.

    python examples/stream_frames.py [SOURCE] [--model shapes-demo]
    ffmpeg -i clip.mp4 -f matroska - | python examples/stream_frames.py -
"""

from __future__ import annotations

import argparse

import ifc_sdk
from ifc_sdk.cli.demo import EXAMPLE_VIDEO

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("source", nargs="?", default=str(EXAMPLE_VIDEO), help="video, URL, camera index or -")
parser.add_argument("--model", default="shapes-demo")
args = parser.parse_args()

source = int(args.source) if args.source.isdigit() else args.source  # "0": the first camera
stream = ifc_sdk.segment_video(source, args.model, stream=True, progress=False)  # the model's window and size
try:
    for frame in stream:
        t = "-" if frame.timestamp is None else f"{frame.timestamp:.2f}s"
        print(f"frame {frame.index} ({t}): tracks {frame.track_ids}")
except KeyboardInterrupt:
    print(f"stopped after {stream.num_frames} frames; they are final")
for track in stream.tracks:  # class probabilities: final once the stream is exhausted
    probs = track.class_probs
    print(f"track {track.id}: class {int(probs[:-1].argmax())} p={probs[:-1].max():.2f}")
if stream.decode_report.damaged:
    print(f"damaged source: {stream.decode_report.summary()}")
