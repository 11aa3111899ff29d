"""``ifc-sdk segment``: segment videos, streams or cameras and write results, optionally an overlay video.

Each source gets its own folder ``OUT/<name>/`` (names made unique: ``clip``, ``clip-2``, ...). Writing there
touches only the files this command writes; temporaries a killed run left beside them are removed. A source
that fails is reported and the others still run; the exit code is 1 if any failed. Ctrl-C stops reading the
current source, writes what was read and ends (exit code 130).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from ifc_sdk.errors import IFCError, OutputError

DEFAULT_FORMATS = ("ytvis",)
SUMMARY_NAME = "summary.json"
OVERLAY_NAME = "overlay.mp4"
# The overlay reuses the frames kept while segmenting up to this much memory; past it the source is read again.
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
    parser.add_argument(
        "--mask-resize",
        choices=("reference", "aligned"),
        default="reference",
        help="reference (default): masks as the reference makes them; aligned: without its shift towards the "
        "top-left where the network input's side is not a multiple of 8",
    )


def resolve_inference_arguments(args: argparse.Namespace, model=None) -> None:
    """Fill the --window/--stride/--size options a command has and left unset with the recommended settings of
    ``model`` (a loaded model), else of ``args.model`` (its manifest entry)."""
    from ifc_sdk.api import inference_defaults

    for key, value in inference_defaults(args.model if model is None else model).items():
        if hasattr(args, key) and getattr(args, key) is None:
            setattr(args, key, value)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "segment",
        help="segment and track the instances in videos, streams and cameras",
        description="Segment and track every object instance in each source and write the results to "
        "OUT/<name>/ (names made unique). A source is a video file, a folder of frames, a glob "
        "('frames/*.jpg', quoted), an http(s):// URL, a network stream (rtsp://, rtmp://, tcp://, udp://, "
        "srt://), a camera (0, /dev/video0) or - for a video piped on stdin. Ctrl-C stops reading and writes "
        "the frames read so far. Window, stride and size default to the model's recommended settings.",
    )
    p.add_argument("sources", nargs="+", metavar="SOURCE")
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
def unique_names(stems: list[str]) -> list[str]:
    """One output folder name per source stem: ``clip``, ``clip-2``, ... where stems collide (compared
    case-insensitively, so folders stay distinct on case-insensitive file systems)."""
    taken: set[str] = set()
    out = []
    for stem in stems:
        base = name = stem.lstrip(".") or "video"
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
def segment_one(
    source: str, info, model, args: argparse.Namespace, out_dir: Path
) -> tuple[dict, dict[str, Path], bool]:
    """Segment one source and write its outputs into ``out_dir``; returns its summary, what was written and
    whether Ctrl-C stopped it (the frames read until then are written).

    Everything is written into a staging folder first and moved into ``out_dir`` at the end, so a failure
    (disk full, a broken video) leaves ``out_dir`` as it was.
    """
    from ifc_sdk.api import segment_video
    from ifc_sdk.io.atomic import atomic_write_text, staging_dir
    from ifc_sdk.io.export import FILE_NAMES, export, publish, sweep_outputs
    from ifc_sdk.results import FrameKeeper

    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(out_dir, "the output folder for this video is an existing file, not a folder")
    start = time.perf_counter()
    stream = segment_video(
        source,
        model,
        window=args.window,
        stride=args.stride,
        size=args.size or None,
        precision=args.precision,
        mask_resize=args.mask_resize,
        progress=not args.quiet,
        stream=True,
        keep_masks=True,
        keep_frames=args.overlay,
    )
    # The overlay draws on the frames kept while segmenting, up to a memory budget (then: decoded again).
    frames = FrameKeeper(stream, max_bytes=KEEP_FRAMES_BYTES) if args.overlay else stream
    interrupted = False
    try:
        for _ in frames:
            pass
    except KeyboardInterrupt:  # stop reading; every frame released so far is final and gets written
        interrupted = True
    result = stream.result(partial=interrupted)
    result.images = frames.images if args.overlay else None
    seconds = time.perf_counter() - start
    result = result.filter(args.score_threshold)
    sweep_outputs(out_dir.parent, [out_dir.name])  # a killed run's staging folder for this video
    sweep_outputs(out_dir, [*FILE_NAMES.values(), OVERLAY_NAME, SUMMARY_NAME])  # and its temporaries inside
    with staging_dir(out_dir) as staged:
        try:
            written = export(result, staged, args.formats or DEFAULT_FORMATS)
            notes = []
            if args.overlay:
                overlay = write_overlay(result, source, info, staged / OVERLAY_NAME)
                if overlay is None:
                    notes.append(
                        "no overlay: the frames outgrew memory and a live source cannot be read twice"
                    )
                else:
                    written["overlay"] = overlay
            written["summary"] = staged / SUMMARY_NAME
            summary = summarize(source, result, seconds, args, interrupted, notes)
            summary["files"] = {kind: str(out_dir / path.name) for kind, path in written.items()}
            atomic_write_text(written["summary"], json.dumps(summary, indent=2) + "\n")
        except OutputError as exc:  # name the file the user asked for, not its staging copy
            if not Path(exc.path).is_relative_to(staged):
                raise
            final = out_dir / Path(exc.path).relative_to(staged)
            raise OutputError(final, str(exc)[len(exc.path) + 2 :], exc.cause) from exc
        written = publish(written, out_dir)
    return summary, written, interrupted


def write_overlay(result, source: str, info, path: Path) -> Path | None:
    """The overlay video, drawn on the frames kept while segmenting, else on the source read again (its first
    ``result.num_frames`` frames); None for a live source whose frames were not kept."""
    from ifc_sdk.io.sources import open_source

    if result.images is not None:
        return result.save_overlay(path)
    if info.live:
        return None
    with open_source(source) as reader:
        return result.save_overlay(path, itertools.islice(reader, result.num_frames))


def summarize(
    source: str, result, seconds: float, args: argparse.Namespace, interrupted: bool = False, notes=()
) -> dict:
    """What a run produced: settings, frames, speed, damage and the tracks kept (highest score first)."""
    tracks = sorted(result.tracks, key=lambda t: (-t.score, t.id))
    report = result.decode_report
    return {
        "source": str(source),
        "model": str(args.model),
        "settings": {
            "window": args.window,
            "stride": args.stride,
            "size": args.size or None,
            "precision": args.precision,
            "mask_resize": args.mask_resize,
            "score_threshold": args.score_threshold,
        },
        "frames": result.num_frames,
        "height": int(result.size[0]),
        "width": int(result.size[1]),
        "seconds": round(seconds, 3),
        "fps": round(result.num_frames / seconds, 3) if seconds > 0 else None,
        "interrupted": interrupted,
        "damage": report.summary() if report is not None and report.damaged else None,
        "notes": list(notes),
        "tracks": [
            {
                "id": t.id,
                "label": t.label,
                "name": t.label_name,
                "score": round(t.score, 4),
                "frames": len(t.frame_masks),
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
    if summary["interrupted"]:
        lines.append("  interrupted: the frames read until Ctrl-C are written")
    if summary["damage"]:
        lines.append(f"  damaged: {summary['damage']}")
    lines += [f"  note: {note}" for note in summary["notes"]]
    lines += [f"  {kind}: {path}" for kind, path in summary["files"].items()]
    return lines


# ---------------------------------------------------------------------------------------------- command
def run(args: argparse.Namespace) -> int:
    from ifc_sdk.api import load_model
    from ifc_sdk.inference.predictor import check_window
    from ifc_sdk.io.atomic import ensure_dir
    from ifc_sdk.io.sources import describe_source
    from ifc_sdk.results.result import check_probability

    resolve_inference_arguments(args)
    check_window(args.window, args.stride)
    args.score_threshold = check_probability(args.score_threshold, "--score-threshold")
    check_writable(ensure_dir(args.out))  # a file there, or a read-only folder, fails before any work
    failures: list[tuple[str, str]] = []
    described = []
    for source in args.sources:
        try:
            described.append((source, describe_source(source)))
        except IFCError as exc:  # not a source at all: reported with the other failures
            failures.append((source, str(exc)))
    names = unique_names([info.stem for _, info in described])
    plan = [(source, info, args.out / name) for (source, info), name in zip(described, names, strict=True)]
    for source, _, out_dir in plan:
        print(f"{source} -> {out_dir}")
    model = load_model(args.model, device=args.device) if plan else None
    start = time.perf_counter()
    done = 0
    interrupted = False
    for source, info, out_dir in plan:
        try:
            summary, _, interrupted = segment_one(source, info, model, args, out_dir)
        except Exception as exc:  # noqa: BLE001 - one failing video must not stop the others
            message = str(exc) if isinstance(exc, (IFCError, OSError)) else f"{type(exc).__name__}: {exc}"
            failures.append((source, message))
            print(f"ifc-sdk segment: error: {source}: {message}", file=sys.stderr)
            continue
        done += 1
        print("\n".join(summary_lines(summary, out_dir)))
        if interrupted:
            break
    total = len(args.sources)
    print(
        f"{done}/{total} video(s) segmented in {time.perf_counter() - start:.1f} s; results under {args.out}"
    )
    if failures:
        print(f"ifc-sdk segment: {len(failures)} of {total} failed:", file=sys.stderr)
        for source, message in failures:
            print(f"  {source}: {message}", file=sys.stderr)
    if interrupted:
        print("interrupted", file=sys.stderr)
        return 130
    return 1 if failures else 0
