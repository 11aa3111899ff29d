"""Render the bundled example video of the synthetic shapes world (ifc_sdk/assets/shapes_example.mp4).

Seed 90003 is never used for training the demo model (see examples/train_demo.py).

    python examples/make_example_video.py
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

from ifc_sdk.data.synthetic import render_video
from ifc_sdk.io.atomic import atomic_path

OUT = Path(__file__).resolve().parents[1] / "ifc_sdk" / "assets" / "shapes_example.mp4"


def main(seed: int = 90003, num_frames: int = 60, fps: int = 15) -> Path:
    video = render_video(seed, num_frames=num_frames, max_objects=4)
    with atomic_path(OUT) as tmp, av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream(
            "libx264", rate=Fraction(fps, 1), options={"crf": "20", "preset": "slow"}
        )
        stream.height, stream.width = video.frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in video.frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    print(f"{OUT} ({OUT.stat().st_size / 1024:.0f} KiB, {num_frames} frames, {len(video.classes)} objects)")
    return OUT


if __name__ == "__main__":
    main()
