"""The benchmark videos: a synthetic clip or the shared real clips, written once as H.264 mp4 and cached.

Frames are written at the benchmark's size (360x640 by default), so the test-time resize is the identity and
both sides decode the same lossy video, as YouTube-VIS sources are.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from ifc_sdk.io.video import open_video

REPO = Path(__file__).resolve().parents[1]
SHARED_VIDEOS = REPO.parent / "shared" / "fixtures" / "videos"
REAL_VIDEOS = ("bigbuckbunny", "bikes", "carphone_pristine")


def video_names(spec: str) -> list[str]:
    """``--videos``: a comma list of names, or ``all`` (synthetic and the real clips) / ``real``."""
    return {"all": ["synthetic", *REAL_VIDEOS], "real": list(REAL_VIDEOS)}.get(spec, spec.split(","))


def synthetic_frames(num_frames: int, height: int, width: int, seed: int = 0) -> Iterator[np.ndarray]:
    """Deterministic moving textured ellipses and boxes over a drifting gradient, uint8 RGB."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    objects = []
    for _ in range(6):
        objects.append(
            dict(
                c=rng.uniform(0, 1, 2) * (height, width),
                v=rng.uniform(-2, 2, 2) * (height / 360),
                r=rng.uniform(0.06, 0.2, 2) * min(height, width) + 2,
                color=rng.uniform(30, 255, 3),
                freq=rng.uniform(0.05, 0.2),
                box=bool(rng.integers(0, 2)),
            )
        )
    for t in range(num_frames):
        base = (yy / height * 120 + xx / width * 80 + 20 * np.sin(0.05 * t)).astype(np.float32)
        img = np.repeat(base[..., None], 3, axis=2) + np.array([20, 40, 60], np.float32)
        for o in objects:
            cy, cx = (o["c"] + o["v"] * t) % (height, width)
            dy, dx = (yy - cy) / o["r"][0], (xx - cx) / o["r"][1]
            inside = (np.maximum(abs(dy), abs(dx)) < 1) if o["box"] else (dy * dy + dx * dx < 1)
            texture = 0.8 + 0.2 * np.sin(o["freq"] * (xx + yy) + t * 0.3)
            img[inside] = (o["color"] * texture[inside, None]).astype(np.float32)
        yield np.clip(img, 0, 255).astype(np.uint8)


def real_frames(name: str, num_frames: int, height: int, width: int) -> Iterator[np.ndarray]:
    """The first frames of a shared real clip resized to ``height x width`` (PIL bilinear); the clip is
    played forwards and backwards as often as needed to reach ``num_frames``."""
    from PIL import Image

    path = SHARED_VIDEOS / f"{name}.mp4"
    if not path.exists():
        raise SystemExit(f"real clip {path} not found (expected ../shared/fixtures/videos beside the repo)")
    frames = []
    with open_video(path) as reader:
        for frame in reader:
            frames.append(np.asarray(Image.fromarray(frame.image).resize((width, height), Image.BILINEAR)))
            if len(frames) >= num_frames:
                break
    cycle = frames + frames[-2:0:-1] if len(frames) > 1 else frames
    for i in range(num_frames):
        yield cycle[i % len(cycle)]


def write_mp4(frames: Iterable[np.ndarray], path: Path, fps: int = 25, crf: int = 18) -> Path:
    """H.264 (libx264, yuv420p) as the YouTube-VIS sources are lossy video; written atomically."""
    import av

    tmp = path.with_suffix(".tmp.mp4")
    with av.open(str(tmp), "w") as container:
        stream = None
        for frame in frames:
            if stream is None:
                stream = container.add_stream("libx264", rate=Fraction(fps, 1))
                stream.pix_fmt = "yuv420p"
                stream.height, stream.width = frame.shape[:2]
                stream.options = {"crf": str(crf), "preset": "fast"}
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    tmp.replace(path)
    return path


def prepare_video(name: str, num_frames: int, height: int, width: int, cache: Path) -> Path:
    """The mp4 for one benchmark video (cached under ``cache``)."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{name}_{num_frames}f_{height}x{width}.mp4"
    if not path.exists():
        frames = (
            synthetic_frames(num_frames, height, width)
            if name == "synthetic"
            else real_frames(name, num_frames, height, width)
        )
        write_mp4(frames, path)
    return path


def decode_all(path: Path) -> list[np.ndarray]:
    """Every frame of a video, uint8 RGB ``(H, W, 3)``."""
    with open_video(path) as reader:
        return [frame.image for frame in reader]


def decode_fps(path: Path, repeats: int = 3) -> float:
    """Frames per second of decoding alone (median of ``repeats``), the ceiling of any end-to-end FPS."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        n = len(decode_all(path))
        times.append(time.perf_counter() - start)
    return n / statistics.median(times)
