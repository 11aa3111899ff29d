"""Peak memory of one end-to-end run per side, each in a fresh process (``--memory``).

Within one long benchmark process the peak RSS of a run includes what earlier runs left behind; here the row's
model (its calibrated weights saved to a temporary file) is loaded by a child ``fps.py --probe ours|baseline``
that makes one end-to-end run on the first video and prints its peak memory as JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.harness import peak_memory, run_baseline, run_ours
from benchmarks.kinds import Bench, RowKind
from benchmarks.models import build_model
from benchmarks.rows import ROWS, Row
from benchmarks.videos import prepare_video

FPS_SCRIPT = Path(__file__).resolve().with_name("fps.py")


def probe(args: argparse.Namespace, device: torch.device, size: int | None, overrides: dict) -> int:
    """Child process of --memory: one end-to-end run of one side; prints its peak memory as JSON."""
    row = ROWS[args.rows.split(",")[0]]
    path = prepare_video(args.videos.split(",")[0], args.frames, args.height, args.width, args.cache)
    model, _ = build_model(row.arch, device, seed=args.seed, instances=0, **overrides)
    model.load_state_dict(torch.load(args.probe_weights, map_location=device, weights_only=True))
    before = peak_memory(device)
    run = (run_ours if args.probe == "ours" else run_baseline)(model, path, row, size=size, precision="fp32")
    print(
        json.dumps(
            {
                "side": args.probe,
                "row": row.key,
                "seconds": run.seconds,
                "rss_before_run_gb": before.get("peak_rss_gb"),
                **run.memory,
            }
        )
    )
    return 0


def measure_memory(model, row: Row, video: str, args: argparse.Namespace, log) -> list[dict]:
    """Peak RSS of one end-to-end run per side, each in a fresh process (no memory left over from other runs)."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "model.pt"
        torch.save(model.state_dict(), weights)
        for side in ("ours", "baseline"):
            cmd = [
                sys.executable,
                str(FPS_SCRIPT),
                "--probe",
                side,
                "--probe-weights",
                str(weights),
                "--rows",
                row.key,
                "--videos",
                video,
                "--frames",
                str(args.frames),
                "--height",
                str(args.height),
                "--width",
                str(args.width),
                "--size",
                str(args.size),
                "--device",
                str(model.device),
                "--seed",
                str(args.seed),
                "--cache",
                str(args.cache),
            ]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            if args.quick:
                cmd += ["--quick"]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                log(f"  memory probe {side} failed: {done.stderr[-2000:]}")
                continue
            entry = json.loads(done.stdout.strip().splitlines()[-1]) | {"video": video}
            log(f"  memory {row.label} {video} {side}: {entry}")
            out.append(entry)
    return out


def run(bench: Bench, row: Row, model) -> None:
    """The fresh-process memory of one row on the first video (report key ``memory``)."""
    bench.report.setdefault("memory", []).extend(
        measure_memory(model, row, bench.videos[0], bench.args, bench.log)
    )
    bench.save()


KIND = RowKind(
    name="memory",
    run=run,
    wanted=lambda args: args.memory or args.memory_only,
)
