"""The machine a benchmark runs on: device selection, thread count, and the versions recorded with results."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import subprocess
from pathlib import Path

import numpy as np
import torch

import ifc_sdk
from benchmarks.videos import REPO


def select_device(args: argparse.Namespace) -> torch.device:
    """Apply ``--threads`` and return the ``--device`` asked for (CUDA when available by default)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for, but CUDA is not available")
    return device


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _nvidia_driver() -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().splitlines()[0]
    return None


def environment(device: torch.device) -> dict:
    """Time, host, CPU, thread count, load average and library versions (GPU, CUDA, cuDNN, driver on CUDA)."""
    env = {
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "ifc_sdk": getattr(ifc_sdk, "__version__", "unknown"),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "loadavg_start": list(os.getloadavg()),
        "device": str(device),
    }
    with contextlib.suppress(Exception):
        import av

        env["pyav"] = av.__version__
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        env["git_commit"] = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or None
        )
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(
            gpu=props.name,
            gpu_memory_gb=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            driver=_nvidia_driver(),
        )
        env["device_name"] = props.name
    else:
        env["device_name"] = f"CPU: {env['cpu']} ({env['cpu_count']} cores, {env['torch_threads']} threads)"
    return env
