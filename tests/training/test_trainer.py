"""The trainer: DDP equals one process, exact resume, the loss goes down, fine-tune init drops the class head;
the output folder: a user's files survive, normal permissions, killed runs swept, failures as one-line errors.

Everything runs on the CPU with a shrunk "demo" model on a tiny synthetic dataset (64x96 frames). The
2-process run uses gloo in forked processes (what ``torchrun --nproc_per_node 2`` does, without paying the
interpreter start-up twice).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import tempfile
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from ifc_sdk.checkpoint import save_pretrained
from ifc_sdk.cli import main as cli_main
from ifc_sdk.data.synthetic import generate_dataset
from ifc_sdk.errors import CheckpointError, ConfigError
from ifc_sdk.modeling import build_ifc, preset_config
from ifc_sdk.modeling.backbone import FrozenBatchNorm2d, ResNet
from ifc_sdk.training import state as state_mod
from ifc_sdk.training.loader import ClipStream, shard_positions
from ifc_sdk.training.recipes import get_recipe
from ifc_sdk.training.scratch import calibrate_frozen_bn
from ifc_sdk.training.trainer import load_finetune_init, pad_size, train

# The demo preset shrunk further: 2+2 transformer layers, 6 queries, no dropout (dropout masks are drawn per
# process, so they could not match between 1 and 2 processes).
TINY = dict(
    num_enc_layers=2,
    num_dec_layers=2,
    num_queries=6,
    dim_feedforward=64,
    hidden_dim=32,
    num_heads=4,
    dropout=0.0,
    num_frames=2,
    frame_range=4,
    min_sizes=(48, 64),
    max_size=200,
    test_size=64,
    test_window=3,
)
COMMON = dict(device="cpu", progress=False, log_every=1, num_workers=0, checkpoint_every=0)
RUN = dict(COMMON, iters=4, batch=2, checkpoint_every=2, **TINY)  # checkpoint at 2, model_final at 4


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root / "train", num_videos=6, seed=101, height=64, width=96, num_frames=(4, 8))
    generate_dataset(root / "val", num_videos=2, seed=102, height=64, width=96, num_frames=(4, 6))
    return root


@pytest.fixture(scope="module")
def stopped(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `RUN` stopped after 2 iterations (checkpoint iter_0000002); tests resume copies of it."""
    out = tmp_path_factory.mktemp("stopped") / "run"
    train("demo_ytvis", data / "train", out, stop_after=2, **RUN)
    return out


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def _losses(out: Path) -> list[float]:
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in lines if "loss" in r]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, data: str, out: str, kwargs: dict) -> None:
    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    train("demo_ytvis", data, out, **kwargs)


def test_stream_is_the_same_for_any_world_size() -> None:
    stream = ClipStream(7, seed=3)
    first_pass = [stream.index(p) for p in range(7)]
    assert sorted(first_pass) == list(range(7))
    assert [stream.index(p) for p in range(7, 14)] != first_pass  # reshuffled every pass
    assert [ClipStream(7, seed=3).index(p) for p in range(20)] == [stream.index(p) for p in range(20)]
    for it in range(3):
        whole = list(shard_positions(it, 8, 0, 1))
        assert [p for r in range(4) for p in shard_positions(it, 8, r, 4)] == whole
        assert [p for r in range(2) for p in shard_positions(it, 8, r, 2)] == whole
    with pytest.raises(ConfigError):
        shard_positions(0, 6, 0, 4)


def test_two_processes_match_one(data: Path, tmp_path: Path) -> None:
    kwargs = dict(COMMON, iters=2, batch=4, base_lr=2e-4, **TINY)
    train("demo_ytvis", data / "train", tmp_path / "single", **kwargs)
    ctx = mp.start_processes(
        _ddp_worker,
        args=(2, _free_port(), str(data / "train"), str(tmp_path / "ddp"), kwargs),
        nprocs=2,
        join=True,
        start_method="fork",
    )
    assert ctx is None or ctx.join()
    single, ddp = _weights(tmp_path / "single" / "model_final"), _weights(tmp_path / "ddp" / "model_final")
    initial = build_ifc(
        get_recipe("demo_ytvis", **TINY).model_config(num_classes=5, categories=None)
    ).state_dict()
    assert single.keys() == ddp.keys()
    diff = max((single[k] - ddp[k]).abs().max().item() for k in single)
    moved = max((single[k] - initial[k]).abs().max().item() for k in single if k in initial)
    print(f"DDP vs single: max weight difference {diff:.2e} (weights moved up to {moved:.2e})")
    assert diff < 5e-5
    assert _losses(tmp_path / "single") == pytest.approx(_losses(tmp_path / "ddp"), rel=1e-5)


def test_resume_gives_the_uninterrupted_weights(data: Path, tmp_path: Path) -> None:
    kwargs = dict(COMMON, iters=4, batch=2, **{**TINY, "dropout": 0.1})  # dropout on: the RNG must resume too
    kwargs["checkpoint_every"] = 2
    train("demo_ytvis", data / "train", tmp_path / "full", **kwargs)
    stopped = train("demo_ytvis", data / "train", tmp_path / "split", stop_after=2, **kwargs)
    assert stopped.model_dir is None and stopped.iteration == 2
    assert (tmp_path / "split" / "last_checkpoint").read_text().strip() == "checkpoints/iter_0000002"
    with pytest.raises(ConfigError, match="resume"):
        train("demo_ytvis", data / "train", tmp_path / "split", **kwargs)
    kwargs["num_workers"] = 1  # the data of an iteration does not depend on the loader's workers
    resumed = train("demo_ytvis", data / "train", tmp_path / "split", resume=True, **kwargs)
    assert resumed.iteration == 4
    full, split = _weights(tmp_path / "full" / "model_final"), _weights(tmp_path / "split" / "model_final")
    diff = max((full[k] - split[k]).abs().max().item() for k in full)
    print(f"resume vs uninterrupted: max weight difference {diff:.2e}")
    assert diff <= 1e-6
    assert _losses(tmp_path / "split") == _losses(tmp_path / "full")
    state = torch.load(
        tmp_path / "split" / "checkpoints" / "iter_0000002" / "training_state.pt", weights_only=True
    )
    assert state["iteration"] == 2 and len(state["rng"]) == 1


def test_short_run_lowers_the_loss_from_a_finetune_init(data: Path, tmp_path: Path) -> None:
    # A "previous stage" with 7 classes: its class head cannot fit the 5 synthetic classes and is dropped.
    config = get_recipe("demo_ytvis", **TINY).model_config(num_classes=7)
    torch.manual_seed(5)
    save_pretrained(build_ifc(config), tmp_path / "stage1")
    out = tmp_path / "run"
    code = cli_main(
        [
            "train",
            "--recipe",
            "demo_ytvis",
            "--data",
            str(data / "train"),
            "--out",
            str(out),
            "--init",
            str(tmp_path / "stage1"),
            "--val",
            str(data / "val"),
            "--iters",
            "80",
            "--batch",
            "2",
            "--workers",
            "0",
            "--device",
            "cpu",
            "--no-progress",
            "--log-every",
            "1",
            "--checkpoint-every",
            "0",
            "--set",
            "base_lr=1e-3",
            "--set",
            "steps=70",
            *[x for k, v in TINY.items() for x in ("--set", f"{k}={_cli(v)}")],
        ]
    )
    assert code == 0
    losses = _losses(out)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    print(f"loss: first 5 iterations {first:.3f}, last 5 {last:.3f}")
    assert last < 0.8 * first
    record = json.loads((out / "recipe.json").read_text())
    assert record["init"]["dropped"] == ["class_embed.layers.1.bias", "class_embed.layers.1.weight"]
    evals = [
        json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if "eval/AP" in line
    ]
    assert len(evals) == 1 and evals[0]["iteration"] == 80
    config_json = json.loads((out / "model_final" / "config.json").read_text())
    assert config_json["categories"] == ["circle", "square", "triangle", "star", "cross"]


def _cli(value) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)


def test_finetune_init_drops_only_the_class_head() -> None:
    torch.manual_seed(0)
    coco = build_ifc(preset_config("demo", num_classes=80))
    state = coco.state_dict()
    torch.manual_seed(1)
    ytvis = build_ifc(preset_config("demo", num_classes=40))
    fresh_head = {
        k: v.clone() for k, v in ytvis.state_dict().items() if k.startswith("class_embed.layers.1.")
    }
    dropped = load_finetune_init(ytvis, state)
    assert dropped == ["class_embed.layers.1.bias", "class_embed.layers.1.weight"]
    for k, v in ytvis.state_dict().items():
        expected = fresh_head[k] if k in fresh_head else state[k]
        assert torch.equal(v, expected), k
    # Same number of classes: everything is kept unless asked otherwise.
    same = build_ifc(preset_config("demo", num_classes=80))
    assert load_finetune_init(same, state) == []
    assert torch.equal(same.class_embed.layers[1].weight, coco.class_embed.layers[1].weight)
    assert load_finetune_init(same, state, drop_class_head=True) == dropped
    with pytest.raises(CheckpointError, match="shape"):
        load_finetune_init(build_ifc(preset_config("demo", num_classes=40)), state, drop_class_head=False)


@torch.no_grad()
def test_calibrated_frozen_bn_standardises_every_convolution() -> None:
    backbone = ResNet(50, stem_channels=8, res2_channels=32, bottleneck_channels=8)
    x = torch.randn(4, 3, 64, 64) * 3 + 1
    norms = {n: m for n, m in backbone.named_modules() if isinstance(m, FrozenBatchNorm2d)}
    assert calibrate_frozen_bn(backbone, x, residual_scale=0.25) == len(norms)
    outputs = {}
    hooks = [
        m.register_forward_hook(lambda m, a, out, n=n: outputs.__setitem__(n, out)) for n, m in norms.items()
    ]
    backbone(x)
    for h in hooks:
        h.remove()
    for name, out in outputs.items():
        std = 0.25 if name.endswith("conv3.norm") else 1.0
        torch.testing.assert_close(out.mean(dim=(0, 2, 3)), torch.zeros(out.shape[1]), atol=1e-4, rtol=0)
        torch.testing.assert_close(
            out.std(dim=(0, 2, 3), unbiased=False), torch.full((out.shape[1],), std), atol=1e-3, rtol=1e-3
        )


def test_pad_size() -> None:
    assert pad_size((130, 202), 32) == (160, 224)
    assert pad_size((160, 224), 32) == (160, 224)
    assert pad_size([130, 202], 0) == (130, 202)


# ------------------------------------------------------------------------------------------- output folder
def _train_cli(data: Path, out: Path, *extra: str) -> int:
    args = ["train", "--recipe", "demo_ytvis", "--data", str(data / "train"), "--out", str(out)]
    args += ["--iters", "2", "--batch", "2", "--workers", "0", "--device", "cpu", "--no-progress", *extra]
    return cli_main(args + [x for k, v in TINY.items() for x in ("--set", f"{k}={_cli(v)}")])


def _error_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip()  # may start with the note that no --init was given
    assert "Traceback" not in err and err.count("error:") == 1, err
    last = err.splitlines()[-1]
    assert last.startswith("ifc-sdk train: error: "), err
    return last


def _texts(folder: Path, names) -> dict[str, str]:
    return {name: (folder / name).read_text() for name in names if (folder / name).is_file()}


def test_a_users_files_survive_a_run_and_a_resume(data: Path, stopped: Path, tmp_path: Path) -> None:
    mine = {"notes.txt": "my notes", "mine/data.txt": "keep", "model_final/README.md": "about the model"}
    fresh = tmp_path / "fresh"
    for name, text in mine.items():
        (fresh / name).parent.mkdir(parents=True, exist_ok=True)
        (fresh / name).write_text(text)
    train("demo_ytvis", data / "train", fresh, **{**RUN, "iters": 2, "checkpoint_every": 1})
    assert _texts(fresh, mine) == mine
    assert (fresh / "model_final" / "model.safetensors").is_file()

    out = shutil.copytree(stopped, tmp_path / "resumed")
    mine["checkpoints/iter_0000002/NOTES.md"] = "iteration 2 looked good"
    mine["checkpoints/README.txt"] = "my checkpoints"
    for name, text in mine.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    # keep_checkpoints=1 prunes iter_0000002 once iter_0000003 is written: only the SDK's files go.
    train(
        "demo_ytvis", data / "train", out, resume=True, **{**RUN, "checkpoint_every": 1}, keep_checkpoints=1
    )
    assert _texts(out, mine) == mine
    assert sorted(p.name for p in (out / "checkpoints" / "iter_0000002").iterdir()) == ["NOTES.md"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "README.txt",
        "iter_0000002",
        "iter_0000003",
    ]
    assert sorted(p.name for p in (out / "model_final").iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]


def test_written_files_follow_the_umask(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    previous = os.umask(0o022)
    try:
        train("demo_ytvis", data / "train", out, **{**RUN, "iters": 2, "checkpoint_every": 1})
    finally:
        os.umask(previous)
    modes = {str(p.relative_to(out)): oct(p.stat().st_mode & 0o777) for p in [out, *out.rglob("*")]}
    assert "checkpoints/iter_0000001/model.safetensors" in modes and "model_final/config.json" in modes
    wrong = {k: m for k, m in modes.items() if m != ("0o755" if (out / k).is_dir() else "0o644")}
    assert wrong == {}


def _killed_while_checkpointing(data: str, out: str) -> None:
    torch.set_num_threads(1)
    torch.save = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)  # this forked child only
    train("demo_ytvis", data, out, **{**RUN, "checkpoint_every": 1})


def test_the_temporaries_of_a_killed_run_are_swept(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    child = mp.get_context("fork").Process(
        target=_killed_while_checkpointing, args=(str(data / "train"), str(out))
    )
    child.start()
    child.join()
    assert child.exitcode == -signal.SIGKILL
    left = [p.name for p in (out / "checkpoints").iterdir()]
    assert len(left) == 1 and left[0].startswith(".iter_0000001.")  # a half-written checkpoint
    (out / ".metrics.jsonl.tmp-k2l_9xq0.jsonl").write_text("{")  # as an interrupted atomic write leaves it
    lookalikes = [
        "checkpoints/.iter_0000001.staging-ab",
        ".notes.txt.tmp-abcdefgh",
        "metrics.jsonl.tmp-abcdefgh",
    ]
    for name in lookalikes:
        (out / name).write_text("mine")
    result = train(
        "demo_ytvis", data / "train", out, resume=True, **{**RUN, "iters": 2, "checkpoint_every": 0}
    )
    assert result.iteration == 2
    hidden = sorted(str(p.relative_to(out)) for p in out.rglob(".*"))
    assert hidden == sorted(lookalikes[:2])


def test_resume_drops_a_torn_last_metrics_line(data: Path, stopped: Path, tmp_path: Path) -> None:
    out = shutil.copytree(stopped, tmp_path / "run")
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"iteration": 3, "lr": 0.0003, "loss_ce": 1.2')  # the run was killed while writing it
    with pytest.warns(UserWarning, match="dropped its last line"):
        result = train("demo_ytvis", data / "train", out, resume=True, **RUN)
    assert result.iteration == 4 and result.model_dir is not None
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [1, 2, 3, 4]


def test_cli_refused_training_state_is_one_line(data: Path, stopped: Path, tmp_path: Path, capsys) -> None:
    out = shutil.copytree(stopped, tmp_path / "run")
    state_file = out / "checkpoints" / "iter_0000002" / "training_state.pt"
    torch.save({"iteration": 2, "optimizer": socket.socket}, state_file)  # a class: refused by weights_only
    assert _train_cli(data, out, "--resume") == 1
    err = _error_line(capsys)
    assert str(state_file) in err and "safe loader" in err and "last_checkpoint" in err


def test_cli_output_folder_failures_are_one_line(
    data: Path, tmp_path: Path, capsys, full_disk, monkeypatch
) -> None:
    out = tmp_path / "a_file"
    out.write_text("not a folder")
    assert _train_cli(data, out) == 1
    assert f"{out}: the output folder is an existing file" in _error_line(capsys)
    assert out.read_text() == "not a folder"

    out = tmp_path / "run"
    full_disk(state_mod)  # the disk fills up while the first checkpoint is written
    assert _train_cli(data, out, "--checkpoint-every", "1") == 1
    err = _error_line(capsys)
    assert str(out / "checkpoints" / "iter_0000001") in err and "disk full" in err
    assert list((out / "checkpoints").iterdir()) == [] and not (out / "last_checkpoint").exists()

    out = tmp_path / "read_only"
    out.mkdir()  # on a read-only file system (tests may run as root, for whom chmod does not stop writes)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    assert _train_cli(data, out) == 1
    assert f"{out / 'recipe.json'}: cannot write: read-only file system" in _error_line(capsys)
