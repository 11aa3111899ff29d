"""What a run reports: ``metrics.jsonl``, TensorBoard events, a progress bar, ``recipe.json`` and evaluations.

Files in the run folder ``OUT`` (written by the main process)::

    recipe.json         the recipe and arguments of the run, its start iteration and initial weights
    metrics.jsonl       one JSON line per logging step (mean losses, lr, times) and per evaluation (eval/AP, ...)
    eval_results.json   YouTube-VIS results of the latest evaluation
    tensorboard/        the same scalars, when ``tensorboard`` is installed

On resume, `RunLog.open` drops the lines logged after the checkpoint (the run logs those iterations again). A
last line cut short by a killed run (or any line that is not a JSON record) is dropped with a warning instead
of stopping the resume.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ifc_sdk.io.atomic import atomic_write_text, output_error

__all__ = ["EVAL_RESULTS_NAME", "METRICS_NAME", "RECIPE_NAME", "RunLog", "read_metrics"]

METRICS_NAME = "metrics.jsonl"
RECIPE_NAME = "recipe.json"
EVAL_RESULTS_NAME = "eval_results.json"


def read_metrics(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """The lines of a ``metrics.jsonl`` with their records; lines that are not JSON records (the last one of a
    killed run is cut short) are dropped with a warning naming them."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise output_error(path, exc, "cannot read") from exc
    records, bad = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and isinstance(record.get("iteration", 0), int | float):
            records.append((line, record))
        else:
            bad.append(number)
    if bad == [len(lines)]:
        warnings.warn(
            f"{path}: dropped its last line, cut short when the run writing it was stopped", stacklevel=3
        )
    elif bad:
        warnings.warn(f"{path}: dropped line(s) {', '.join(map(str, bad))}: not JSON records", stacklevel=3)
    return records


class RunLog:
    """The main process's logs of one run (a silent no-op on the other processes).

    Args:
        out: the run folder.
        main: whether this is the main process (the only one that writes).
        progress: show a tqdm bar (main process only).
    """

    def __init__(self, out: Path, *, main: bool, progress: bool) -> None:
        self.out = out
        self.main = main
        self.show_progress = progress and main
        self.path = out / METRICS_NAME
        self._file = None
        self._tb = None
        self._bar: tqdm | None = None

    def write_recipe(self, record: dict[str, Any]) -> None:
        """``recipe.json``: what this run was started with."""
        if self.main:
            atomic_write_text(self.out / RECIPE_NAME, json.dumps(record, indent=2) + "\n")

    def open(self, start_iter: int, total: int, desc: str) -> None:
        """Start logging at ``start_iter`` (dropping later lines of an earlier run) and show the bar."""
        self._bar = tqdm(
            total=total,
            initial=start_iter,
            desc=desc,
            unit="it",
            disable=not self.show_progress,
            dynamic_ncols=True,
        )
        if not self.main:
            return
        if self.path.is_file():
            kept = [
                line for line, record in read_metrics(self.path) if record.get("iteration", 0) <= start_iter
            ]
            atomic_write_text(self.path, "".join(line + "\n" for line in kept))
        try:
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close)
        except OSError as exc:
            raise output_error(self.path, exc) from exc
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.out / "tensorboard"))
        except ImportError:
            self._tb = None

    def log(self, record: dict[str, Any]) -> None:
        """Append ``record`` (with an ``iteration``) to ``metrics.jsonl`` and TensorBoard."""
        if not self.main:
            return
        try:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        except OSError as exc:
            raise output_error(self.path, exc) from exc
        if self._tb is not None:
            for k, v in record.items():
                if k != "iteration" and isinstance(v, int | float):
                    self._tb.add_scalar(k, v, record["iteration"])

    def step(self, loss: float | None = None, lr: float | None = None) -> None:
        """One iteration done; ``loss`` and ``lr`` (when logged) go to the bar."""
        if self._bar is None:
            return
        if loss is not None:
            self._bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}")
        self._bar.update(1)

    def evaluation(self, iteration: int, metrics: dict[str, float], entries: list[dict]) -> None:
        """Write ``eval_results.json``, log the metrics as ``eval/<name>`` and print the main ones."""
        if not self.main:
            return
        atomic_write_text(self.out / EVAL_RESULTS_NAME, json.dumps(entries))
        self.log({"iteration": iteration, **{f"eval/{k}": v for k, v in metrics.items()}})
        if self.show_progress:
            tqdm.write(
                f"iteration {iteration}: AP {metrics['AP']:.3f}  AP50 {metrics['AP50']:.3f}  "
                f"AR10 {metrics['AR10']:.3f}"
            )

    def close_bar(self) -> None:
        """Close the progress bar (the loop is over; evaluations may still be logged)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def close(self) -> None:
        """Close the bar, ``metrics.jsonl`` and TensorBoard (safe to call twice, or before `open`)."""
        self.close_bar()
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                raise output_error(self.path, exc) from exc
            finally:
                self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
