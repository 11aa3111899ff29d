"""``ifc-sdk segment``: segment videos or frame folders and write results, optionally an overlay video.

Each source gets its own folder ``OUT/<name>/`` (names made unique: ``clip``, ``clip-2``, ...). Writing there
touches only the files this command writes; temporaries a killed run left beside them are removed. A source
that fails is reported and the others still run; the exit code is 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

from ifc_sdk.errors import IFCError, OutputError

DEFAULT_FORMATS = ("ytvis",)
SUMMARY_NAME = "summary.json"
OVERLAY_NAME = "overlay.mp4"
# The overlay reuses the decoded frames when they fit in this much memory; otherwise the source is decoded again.
KEEP_FRAMES_BYTES = 2 << 30


def add_inference_arguments(parser: argparse.ArgumentParser, *, default_model: str = "r50") -> None:
    """Options shared by the commands that run a model over videos (unset ones come from the model)."""
    parser.add_argument(
        "--model",
        default=default_model,
        help=f"manifest name, hf://owner/repo, .pth, .safetensors or model folder (default: {default_model})",
    )
    parser.add_argument(
        "--window", type=int, default=None, help="frames per window (default: the model's, else 5)"
    )
    parser.add_argument(
        "--stride", type=int, default=None, help="frames between window starts (default: the model's, else 1)"
    )
    parser.add_argument(
        "--size",
        type=int,
        default=None,
        help="short side frames are resized to; 0 keeps the source size (default: the model's, else 360)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")


def resolve_inference_arguments(args: argparse.Namespace) -> None:
    """Fill --window/--stride/--size left unset with the model's recommended settings (its manifest entry)."""
    from ifc_sdk.api import inference_defaults

    for key, value in inference_defaults(args.model).items():
        if getattr(args, key) is None:
            setattr(args, key, value)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "segment",
        help="segment and track the instances in videos",
        description="Segment and track every object instance in each video (a video file or a folder of "
        "frames) and write the results to OUT/<name>/ (names made unique). Window, stride and size default "
        "to the model's recommended settings.",
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
    p.add_argument("--overlay", action="store_true", help=f"also write an overlay video ({OVERLAY_NAME})")
    p.add_argument(
        "--score-threshold",
        type=float,
        default=0.0,
        metavar="S",
        help="drop tracks scored below S from the overlay and every export (recorded in coco_rle.json, "
        f"{SUMMARY_NAME} and the overlay's legend; default: 0, keep all)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


# ---------------------------------------------------------------------------------------------- names
def source_name(source: str) -> str:
    """A folder name for a source: a file's stem, a folder's name, ``stdin`` for ``-``, ``camera0`` for a
    camera index, the last path part of a URL, the folder of a glob; safe characters only."""
    text = str(source).rstrip("/\\")
    if text == "-":
        return "stdin"
    if text.isdigit():
        return f"camera{text}"
    if "://" in text:
        url = urlparse(text)
        text = url.path.rstrip("/") or url.netloc
    elif any(c in text for c in "*?["):
        text = re.split(r"[*?\[]", text)[0].rstrip("/\\") or "frames"
    path = Path(text)
    name = path.stem if path.suffix else path.name
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".")
    return name or "video"


def unique_names(sources: list[str]) -> list[str]:
    """One output name per source, ``clip``, ``clip-2``, ... where names collide (case-insensitively, so
    folders stay distinct on case-insensitive file systems)."""
    taken: set[str] = set()
    out = []
    for source in sources:
        base = name = source_name(source)
        n = 1
        while name.casefold() in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name.casefold())
        out.append(name)
    return out


def check_writable(folder: Path) -> None:
    """Create and remove an empty file in ``folder``: a read-only or unwritable folder fails here, before any
    video is segmented, with an `OutputError` naming it."""
    from ifc_sdk.io.atomic import output_error

    try:
        fd, probe = tempfile.mkstemp(prefix=".ifc-sdk.probe-", dir=folder)
    except OSError as exc:
        raise output_error(folder, exc, "cannot write into the output folder") from exc
    os.close(fd)
    os.unlink(probe)


# ---------------------------------------------------------------------------------------------- one video
def frames_fit_in_memory(source: str, budget: int = KEEP_FRAMES_BYTES) -> bool:
    """Whether a file or folder source's decoded frames (from the container's frame count) fit ``budget``
    bytes; True when unknown, or for a source that cannot be read twice anyway."""
    from ifc_sdk.io.video import open_video

    if not Path(source).exists():
        return True
    with open_video(source) as reader:
        if reader.num_frames_hint is None:
            return True
        height, width = reader.size
        return reader.num_frames_hint * height * width * 3 <= budget


def segment_one(source: str, model, args: argparse.Namespace, out_dir: Path) -> tuple[dict, dict[str, Path]]:
    """Segment one source and write its outputs into ``out_dir``; returns its summary and what was written.

    Everything is written into a staging folder first and moved into ``out_dir`` at the end, so a failure
    (disk full, a broken video) leaves ``out_dir`` as it was.
    """
    from ifc_sdk.api import segment_video
    from ifc_sdk.io.atomic import atomic_write_text, staging_dir
    from ifc_sdk.io.export import FILE_NAMES, export, publish, sweep_outputs

    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(out_dir, "the output folder for this video is an existing file, not a folder")
    keep = args.overlay and frames_fit_in_memory(source)
    start = time.perf_counter()
    result = segment_video(
        source,
        model,
        window=args.window,
        stride=args.stride,
        size=args.size or None,
        precision=args.precision,
        progress=not args.quiet,
        keep_frames=keep,
    )
    seconds = time.perf_counter() - start
    result = result.filter(args.score_threshold)
    sweep_outputs(out_dir.parent, [out_dir.name])  # a killed run's staging folder for this video
    sweep_outputs(out_dir, [*FILE_NAMES.values(), OVERLAY_NAME, SUMMARY_NAME])  # and its temporaries inside
    with staging_dir(out_dir) as staged:
        try:
            written = export(result, staged, args.formats or DEFAULT_FORMATS)
            if args.overlay:
                written["overlay"] = write_overlay(result, source, staged / OVERLAY_NAME)
            written["summary"] = staged / SUMMARY_NAME
            summary = summarize(source, result, seconds, args)
            summary["files"] = {kind: str(out_dir / path.name) for kind, path in written.items()}
            atomic_write_text(written["summary"], json.dumps(summary, indent=2) + "\n")
        except OutputError as exc:  # name the file the user asked for, not its staging copy
            if not Path(exc.path).is_relative_to(staged):
                raise
            final = out_dir / Path(exc.path).relative_to(staged)
            raise OutputError(final, str(exc)[len(exc.path) + 2 :], exc.cause) from exc
        written = publish(written, out_dir)
    return summary, written


def write_overlay(result, source: str, path: Path) -> Path:
    """The overlay video, drawn on the frames kept while segmenting, else on the source decoded again."""
    from ifc_sdk.io.video import open_video

    if result.images is not None:
        return result.save_overlay(path)
    with open_video(source) as reader:
        return result.save_overlay(path, reader)


def summarize(source: str, result, seconds: float, args: argparse.Namespace) -> dict:
    """What a run produced: settings, frames, speed and the tracks kept (highest score first)."""
    tracks = sorted(result.tracks, key=lambda t: (-t.score, t.id))
    return {
        "source": str(source),
        "model": str(args.model),
        "settings": {
            "window": args.window,
            "stride": args.stride,
            "size": args.size or None,
            "precision": args.precision,
            "score_threshold": args.score_threshold,
        },
        "frames": result.num_frames,
        "height": int(result.size[0]),
        "width": int(result.size[1]),
        "seconds": round(seconds, 3),
        "fps": round(result.num_frames / seconds, 3) if seconds > 0 else None,
        "tracks": [
            {
                "id": t.id,
                "label": t.label,
                "name": t.label_name,
                "score": round(t.score, 4),
                "frames": int(len(t.frame_masks)),
            }
            for t in tracks
        ],
    }


def summary_lines(summary: dict, out_dir: Path) -> list[str]:
    """The per-video lines printed after each source."""
    names = Counter(t["name"] if t["name"] is not None else f"class {t['label']}" for t in summary["tracks"])
    top = ", ".join(f"{name} {count}" for name, count in names.most_common(5))
    more = len(names) - 5
    fps = "-" if summary["fps"] is None else f"{summary['fps']:.2f}"
    lines = [
        f"{summary['source']}: {summary['frames']} frames {summary['width']}x{summary['height']}, "
        f"{len(summary['tracks'])} tracks"
        + (f" ({top}{f', +{more} more' if more > 0 else ''})" if top else "")
        + f", {summary['seconds']:.1f} s ({fps} FPS)"
    ]
    lines += [f"  {kind}: {path}" for kind, path in summary["files"].items()]
    return lines


# ---------------------------------------------------------------------------------------------- command
def run(args: argparse.Namespace) -> int:
    from ifc_sdk.api import load_model
    from ifc_sdk.inference.predictor import check_window
    from ifc_sdk.io.atomic import ensure_dir
    from ifc_sdk.results.result import check_probability

    resolve_inference_arguments(args)
    check_window(args.window, args.stride)
    args.score_threshold = check_probability(args.score_threshold, "--score-threshold")
    check_writable(ensure_dir(args.out))  # a file there, or a read-only folder, fails before any work
    plan = list(zip(args.sources, (args.out / name for name in unique_names(args.sources)), strict=True))
    for source, out_dir in plan:
        print(f"{source} -> {out_dir}")
    model = load_model(args.model, device=args.device)
    failures: list[tuple[str, str]] = []
    start = time.perf_counter()
    for source, out_dir in plan:
        try:
            summary, _ = segment_one(source, model, args, out_dir)
        except Exception as exc:  # noqa: BLE001 - one failing video must not stop the others
            message = str(exc) if isinstance(exc, (IFCError, OSError)) else f"{type(exc).__name__}: {exc}"
            failures.append((source, message))
            print(f"ifc-sdk segment: error: {source}: {message}", file=sys.stderr)
            continue
        print("\n".join(summary_lines(summary, out_dir)))
    done = len(plan) - len(failures)
    print(
        f"{done}/{len(plan)} video(s) segmented in {time.perf_counter() - start:.1f} s; results under {args.out}"
    )
    if failures:
        print(f"ifc-sdk segment: {len(failures)} of {len(plan)} failed:", file=sys.stderr)
        for source, message in failures:
            print(f"  {source}: {message}", file=sys.stderr)
    return 1 if failures else 0
