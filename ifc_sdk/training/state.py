"""Checkpoints and exact resume: everything a run needs to continue as if it had never stopped.

Layout in the run folder ``OUT``::

    checkpoints/iter_0000500/   model.safetensors + config.json (save_pretrained) + training_state.pt
    last_checkpoint             "checkpoints/iter_0000500" (rewritten atomically once the folder is complete)

``training_state.pt`` holds the optimizer, scheduler, grad scaler, iteration and every process's RNG states
(torch, numpy, python, CUDA); it loads with ``torch.load(weights_only=True)``. With the data stream a function
of (seed, iteration) (`ifc_sdk.training.loader`), restoring it continues to the same weights.

Writes touch only the SDK's files: a model folder is assembled in a `staging_dir` beside its place and renamed
into it (where the folder already exists, its files are moved in one by one, so anything else in it stays);
pruning old checkpoints removes their three files and the folder only when nothing else is left in it. What a
killed run left (staging folders, ``.tmp-*`` files) is swept by `Checkpoints.sweep` when the next run starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import random
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ifc_sdk.checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_state_dict_strict, save_pretrained
from ifc_sdk.errors import CheckpointError, OutputError
from ifc_sdk.io.atomic import atomic_write_text, normal_mode, output_error, staging_dir, sweep_temporaries
from ifc_sdk.modeling.ifc import IFC
from ifc_sdk.training import distributed as du
from ifc_sdk.training.recipes import Recipe

__all__ = [
    "LAST_CHECKPOINT",
    "STATE_NAME",
    "Checkpoints",
    "rng_state",
    "seed_all",
    "set_rng_state",
    "write_model_folder",
]

STATE_NAME = "training_state.pt"
LAST_CHECKPOINT = "last_checkpoint"
CHECKPOINTS = "checkpoints"
CHECKPOINT_FILES = (WEIGHTS_NAME, CONFIG_NAME, STATE_NAME)
CHECKPOINT_NAME = r"iter_\d{7}"
LEGACY_TMP = re.compile(r"\.iter_\d{7}\.tmp")  # the staging folder of ifc_sdk <= 0.x, a fixed name


# ------------------------------------------------------------------------------------------------ RNG state
def rng_state(device: torch.device) -> dict[str, Any]:
    """This process's torch, numpy, python (and CUDA) RNG states, in types ``weights_only`` loading accepts."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": (np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])),
        "python": random.getstate(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    """Restore what `rng_state` returned."""
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def seed_all(seed: int) -> None:
    """Seed torch, numpy and python."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


# ------------------------------------------------------------------------------------------- model folders
class _WriteErrorKeeper:
    """A binary file that remembers its write error: ``torch.save`` reports a failed write as a RuntimeError
    ('unexpected pos ...') that has lost the cause (disk full, quota, ...)."""

    def __init__(self, file) -> None:
        self.file = file
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            return self.file.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.file.flush()


def _save_state(state: dict[str, Any], path: Path) -> None:
    with open(path, "wb") as f:
        sink = _WriteErrorKeeper(f)
        try:
            torch.save(state, sink)
        except RuntimeError as exc:
            if sink.error is None:
                raise
            raise sink.error from exc


def _move_into(staged: Path, folder: Path) -> None:
    """Put the files of ``staged`` in ``folder``: one rename when ``folder`` does not exist, else file by file
    (whatever else ``folder`` holds stays)."""
    for f in staged.iterdir():
        normal_mode(f)  # safetensors writes 0600
    if not folder.exists():
        os.replace(staged, folder)
        normal_mode(folder, folder=True)  # save_pretrained's folder comes from mkdtemp (0700)
        return
    if not folder.is_dir():
        raise OutputError(folder, "exists as a file, not a folder")
    for f in sorted(staged.iterdir()):
        os.replace(f, folder / f.name)


def write_model_folder(model: IFC, folder: Path, state: dict[str, Any] | None = None) -> Path:
    """``model.safetensors`` + ``config.json`` (+ ``training_state.pt`` with ``state``) into ``folder``.

    A reader never sees a half-written file, nothing else in ``folder`` is touched, and filesystem failures
    (disk full, read-only, a file in the way) are an `OutputError` naming ``folder``.
    """
    try:
        with staging_dir(folder) as tmp:
            staged = save_pretrained(model, tmp / folder.name)
            if state is not None:
                _save_state(state, staged / STATE_NAME)
            _move_into(staged, folder)
    except OutputError as exc:
        if ".staging-" not in exc.path:  # a file in the way: name it
            raise
        raise OutputError(folder, exc.message, exc.cause) from exc  # the user's folder, not our staging
    except OSError as exc:
        raise output_error(folder, exc) from exc
    except SafetensorError as exc:  # safetensors' own I/O errors (its message names the OS error)
        raise OutputError(folder, f"cannot write: {exc}", exc) from exc
    return folder


# --------------------------------------------------------------------------------------------- checkpoints
class Checkpoints:
    """The checkpoints of one run folder ``out``; files are written by the main process only.

    Args:
        out: the run folder.
        dist: this process's place in the process group.
        recipe: the run's recipe (its seed re-seeds a resumed run whose process count changed).
        keep: keep only the newest ``keep`` checkpoints (None: all).
    """

    def __init__(self, out: Path, dist: du.DistInfo, recipe: Recipe, keep: int | None = None) -> None:
        self.out = out
        self.root = out / CHECKPOINTS
        self.dist = dist
        self.recipe = recipe
        self.keep = keep

    def latest(self) -> Path | None:
        """The folder ``last_checkpoint`` names, or None when there is none."""
        marker = self.out / LAST_CHECKPOINT
        if not marker.is_file():
            return None
        folder = self.out / marker.read_text().strip()
        if not (folder / STATE_NAME).is_file():
            raise CheckpointError(folder, f"{LAST_CHECKPOINT} names a checkpoint without {STATE_NAME}")
        return folder

    def sweep(self) -> list[Path]:
        """Remove the staging folders and temporary files a killed run left in ``checkpoints/``."""
        removed = sweep_temporaries(self.root, rf"{CHECKPOINT_NAME}|{LEGACY_TMP.pattern}")
        legacy = [p for p in self.root.glob(".iter_*.tmp") if LEGACY_TMP.fullmatch(p.name) and p.is_dir()]
        for p in legacy:
            shutil.rmtree(p)
        return removed + legacy

    def save(self, model: IFC, optimizer, scheduler, scaler, iteration: int) -> Path | None:
        """Write ``checkpoints/iter_<iteration>`` (main process), then point ``last_checkpoint`` at it.

        Every process must call it (the RNG states are gathered); returns the folder on the main process.
        """
        rng = du.all_gather_object(rng_state(self.dist.device), self.dist)
        if not self.dist.is_main:
            return None
        name = f"iter_{iteration:07d}"
        state = {
            "iteration": iteration,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": rng,
            "world_size": self.dist.world_size,
            "recipe": json.dumps(self.recipe.to_dict()),
        }
        folder = write_model_folder(model, self.root / name, state)
        atomic_write_text(self.out / LAST_CHECKPOINT, f"{CHECKPOINTS}/{name}\n")
        if self.keep:
            self._prune()
        return folder

    def _prune(self) -> None:
        """Remove the checkpoints before the newest ``keep``: their files, and the folder if left empty."""
        folders = sorted(
            p for p in self.root.iterdir() if re.fullmatch(CHECKPOINT_NAME, p.name) and p.is_dir()
        )
        for folder in folders[: -self.keep]:
            with contextlib.suppress(OSError):
                for name in CHECKPOINT_FILES:
                    (folder / name).unlink(missing_ok=True)
                folder.rmdir()

    def load(self, folder: Path, model: IFC, optimizer, scheduler, scaler) -> tuple[int, dict | None]:
        """Restore weights, optimizer, scheduler and scaler from ``folder``.

        Returns:
            The next iteration and this process's RNG state, to be set once the data loader exists (None when
            the checkpoint was written by another number of processes: the RNGs are re-seeded instead).
        """
        weights = folder / WEIGHTS_NAME
        try:
            state_dict = load_file(weights)
        except (SafetensorError, OSError) as exc:
            advice = self._advice(folder)
            raise CheckpointError(weights, f"not a readable safetensors file ({exc}); {advice}") from exc
        load_state_dict_strict(model, state_dict, folder)
        path = folder / STATE_NAME
        state = self._read_state(path)
        try:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            if scaler is not None and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            iteration = int(state["iteration"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                path, f"does not fit this run ({type(exc).__name__}: {exc}); {self._advice(folder)}"
            ) from exc
        rng = state.get("rng") or []
        if len(rng) == self.dist.world_size:
            return iteration, rng[self.dist.rank]
        if self.dist.is_main:
            print(
                f"note: the checkpoint was written by {len(rng)} process(es), this run has "
                f"{self.dist.world_size}: random states are re-seeded",
                file=sys.stderr,
            )
        seed_all(self.recipe.seed + 1000 * iteration + self.dist.rank)
        return iteration, None

    def _read_state(self, path: Path) -> dict[str, Any]:
        """``training_state.pt`` through the safe unpickler; anything it refuses is a `CheckpointError`."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle.UnpicklingError for refused objects, RuntimeError for a torn zip
            cause = (str(exc).strip().splitlines() or [""])[0]
            what = (
                "holds objects the safe loader (torch.load weights_only=True) refuses, so it was not written "
                "by ifc_sdk's trainer or has been altered"
                if isinstance(exc, pickle.UnpicklingError)
                else "is damaged or truncated"
            )
            raise CheckpointError(
                path, f"{what} ({type(exc).__name__}: {cause}); {self._advice(path.parent)}"
            ) from exc
        if not isinstance(state, dict):
            raise CheckpointError(
                path, f"expected a dict, found {type(state).__name__}; {self._advice(path.parent)}"
            )
        return state

    def _advice(self, folder: Path) -> str:
        return (
            f"to resume from an earlier checkpoint, remove {folder} and write that checkpoint's name "
            f"(e.g. {CHECKPOINTS}/iter_0000500) into {self.out / LAST_CHECKPOINT}; or train into a new folder"
        )
