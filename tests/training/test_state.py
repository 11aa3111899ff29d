"""Checkpoints: written without touching a user's files, with normal permissions, typed errors for a full disk
and for a ``training_state.pt`` the safe unpickler refuses, and a killed run's temporaries swept."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch
from faults import disk_full_for
from tiny import tiny_model

from ifc_sdk.checkpoint import WEIGHTS_NAME, load_pretrained
from ifc_sdk.errors import CheckpointError, OutputError
from ifc_sdk.training import state as state_mod
from ifc_sdk.training.distributed import DistInfo
from ifc_sdk.training.recipes import get_recipe
from ifc_sdk.training.state import Checkpoints, write_model_folder

SDK_FILES = ["config.json", "model.safetensors", "training_state.pt"]


class Opaque:
    """Not on the safe unpickler's allow-list."""


@pytest.fixture
def run(tmp_path: Path):
    """A tiny model with its optimizer and scheduler, and the checkpoints of a run folder."""
    model = tiny_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: 0.5 ** (it // 2))
    checkpoints = Checkpoints(
        tmp_path / "out", DistInfo(0, 1, 0, torch.device("cpu")), get_recipe("demo_ytvis")
    )
    return model, optimizer, scheduler, checkpoints


def _step(model, optimizer, scheduler) -> None:
    model.class_embed.layers[-1].bias.grad = torch.ones_like(model.class_embed.layers[-1].bias)
    optimizer.step()
    scheduler.step()


def test_save_and_load_restore_the_iteration_optimizer_and_scheduler(run) -> None:
    model, optimizer, scheduler, checkpoints = run
    for _ in range(3):
        _step(model, optimizer, scheduler)
    folder = checkpoints.save(model, optimizer, scheduler, None, 3)
    assert folder == checkpoints.out / "checkpoints" / "iter_0000003"
    assert checkpoints.latest() == folder
    assert sorted(p.name for p in folder.iterdir()) == SDK_FILES

    fresh = tiny_model(seed=1)
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    fresh_sched = torch.optim.lr_scheduler.LambdaLR(fresh_opt, lambda it: 0.5 ** (it // 2))
    iteration, rng = checkpoints.load(folder, fresh, fresh_opt, fresh_sched, None)
    assert iteration == 3 and set(rng) == {"torch", "numpy", "python"}
    assert fresh_sched.last_epoch == 3 and fresh_opt.param_groups[0]["lr"] == pytest.approx(5e-4)
    exp_avg = optimizer.state_dict()["state"]
    assert all(
        torch.equal(exp_avg[k]["exp_avg"], fresh_opt.state_dict()["state"][k]["exp_avg"]) for k in exp_avg
    )
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))


def test_a_users_files_in_checkpoint_folders_survive_rewrite_and_pruning(run) -> None:
    model, optimizer, scheduler, checkpoints = run
    checkpoints.keep = 1
    first = checkpoints.save(model, optimizer, scheduler, None, 1)
    (first / "NOTES.md").write_text("best so far")
    (checkpoints.root / "README.txt").write_text("mine")
    checkpoints.save(model, optimizer, scheduler, None, 1)  # rewritten in place (e.g. a resume redid it)
    assert sorted(p.name for p in first.iterdir()) == ["NOTES.md", *SDK_FILES]
    checkpoints.save(model, optimizer, scheduler, None, 2)
    checkpoints.save(model, optimizer, scheduler, None, 3)  # prunes 1 and 2
    assert [p.name for p in first.iterdir()] == ["NOTES.md"]  # only the SDK's files went
    assert (first / "NOTES.md").read_text() == "best so far"
    assert not (checkpoints.root / "iter_0000002").exists()  # nothing else in it: removed
    assert sorted(p.name for p in checkpoints.root.iterdir()) == [
        "README.txt",
        "iter_0000001",
        "iter_0000003",
    ]


def test_model_folders_keep_other_files_and_follow_the_umask(tmp_path: Path) -> None:
    folder = tmp_path / "model_final"
    folder.mkdir()
    (folder / "README.md").write_text("my notes")
    previous = os.umask(0o022)
    try:
        write_model_folder(tiny_model(), folder)
        write_model_folder(tiny_model(), tmp_path / "fresh")
    finally:
        os.umask(previous)
    assert (folder / "README.md").read_text() == "my notes"
    assert load_pretrained(folder).num_classes == tiny_model().num_classes
    for path in [folder, tmp_path / "fresh"]:
        assert oct(path.stat().st_mode & 0o777) == "0o755", path
        for f in path.iterdir():
            assert oct(f.stat().st_mode & 0o777) == "0o644", f
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "model_final"]  # no staging left


def test_a_full_disk_while_checkpointing_is_an_output_error(run, full_disk, monkeypatch) -> None:
    model, optimizer, scheduler, checkpoints = run
    full_disk(state_mod)  # training_state.pt's file
    with pytest.raises(OutputError, match="disk full") as info:
        checkpoints.save(model, optimizer, scheduler, None, 5)
    assert info.value.path == str(checkpoints.root / "iter_0000005")
    assert isinstance(info.value.cause, OSError) and info.value.cause.errno == errno.ENOSPC
    monkeypatch.undo()

    disk_full_for(monkeypatch, WEIGHTS_NAME)  # the weights' file
    with pytest.raises(OutputError, match="disk full") as info:
        checkpoints.save(model, optimizer, scheduler, None, 5)
    assert info.value.path == str(checkpoints.root / "iter_0000005")
    assert list(checkpoints.root.iterdir()) == []  # no partial checkpoint, no staging folder
    assert not (checkpoints.out / "last_checkpoint").exists()


def test_a_file_where_the_checkpoint_goes_is_an_output_error(run) -> None:
    model, optimizer, scheduler, checkpoints = run
    checkpoints.root.mkdir(parents=True)
    (checkpoints.root / "iter_0000001").write_text("not a folder")
    with pytest.raises(OutputError, match="file, not a folder"):
        checkpoints.save(model, optimizer, scheduler, None, 1)
    assert (checkpoints.root / "iter_0000001").read_text() == "not a folder"


def test_a_refused_or_damaged_training_state_is_a_checkpoint_error(run) -> None:
    model, optimizer, scheduler, checkpoints = run
    folder = checkpoints.save(model, optimizer, scheduler, None, 2)
    state_file = folder / "training_state.pt"
    torch.save({"iteration": 2, "optimizer": Opaque()}, state_file)
    with pytest.raises(CheckpointError) as info:
        checkpoints.load(folder, model, optimizer, scheduler, None)
    message = str(info.value)
    assert message.startswith(f"{state_file}: ") and "\n" not in message
    assert "safe loader" in message and "UnpicklingError" in message
    assert "last_checkpoint" in message  # says what to do

    state_file.write_bytes(state_file.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="damaged or truncated"):
        checkpoints.load(folder, model, optimizer, scheduler, None)
    torch.save({"iteration": 2}, state_file)
    with pytest.raises(CheckpointError, match="does not fit this run"):
        checkpoints.load(folder, model, optimizer, scheduler, None)


def test_sweep_removes_only_the_temporaries_of_killed_runs(run) -> None:
    *_, checkpoints = run
    root = checkpoints.root
    ours = [".iter_0000004.staging-abcd_123", ".iter_0000004.tmp", "..iter_0000004.tmp.tmp-x1y2z3w4"]
    theirs = [".iter_0000004.staging-abc", "notes.tmp-abcd1234", ".mine.staging-abcd1234", "iter_0000002"]
    for name in ours + theirs:
        (root / name).mkdir(parents=True)
        (root / name / "f").write_text("x")
    (root / ".last.tmp-abcd1234").write_text("x")
    removed = checkpoints.sweep()
    assert sorted(p.name for p in removed) == sorted(ours)
    assert sorted(p.name for p in root.iterdir()) == sorted([*theirs, ".last.tmp-abcd1234"])
