"""Shared test fixtures: the reference fixture folder and deterministic settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
REFERENCE = SHARED / "reference"
YTVIS_EVAL = SHARED / "ytvis_eval"
VIDEOS = SHARED / "videos"

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def require(path: Path) -> Path:
    """Skip the calling test when a shared fixture is absent (e.g. a checkout without ../shared)."""
    if not path.exists():
        pytest.skip(f"shared fixture {path} not found (expected ../shared beside the repository)")
    return path


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> Callable[[ModuleType], None]:
    """``full_disk(module)``: files that ``module`` opens from now on are on a full disk."""
    from faults import full_disk_open

    return lambda module: full_disk_open(monkeypatch, module)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
