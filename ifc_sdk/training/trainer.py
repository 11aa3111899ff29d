"""The IFC training loop: a `Recipe` on one process or on torch DDP (``torchrun``), with exact resume.

What one iteration does, as the reference (detectron2 ``SimpleTrainer`` + IFC's ``build_optimizer``):
global batch -> normalise and zero-pad -> ``IFC.forward`` -> `IFCCriterion` (weighted, deep supervision) ->
sum of the ``loss_*`` terms -> backward (DDP averages gradients) -> L2 clipping of the full model's gradient
norm to ``clip_value`` -> AdamW (backbone learning rate x ``backbone_multiplier``) -> warmup + multi-step LR.
The stem and res2 are frozen (``freeze_at=2``); every FrozenBN is frozen anyway.

Output folder::

    out/
      recipe.json                  the recipe and arguments of the run
      metrics.jsonl                one JSON line per logging step / evaluation
      checkpoints/iter_0000500/    model.safetensors + config.json (save_pretrained) + training_state.pt
      last_checkpoint              "checkpoints/iter_0000500" (written after the folder is complete)
      model_final/                 model.safetensors + config.json at the end
      eval_results.json            YouTube-VIS results of the latest evaluation

``training_state.pt`` holds the optimizer, scheduler, grad-scaler and iteration, and every process's RNG
states; it loads with ``torch.load(weights_only=True)``. With the data stream a function of (seed, iteration)
(`ifc_sdk.training.loader`), ``resume=True`` continues to the same weights as an uninterrupted run.

Differences from the reference trainer: the padded size of a batch is agreed on by all processes (the
reference pads per GPU, so its loss depends on how a batch is split), and under DDP each process's
cross-entropy is rescaled so that the averaged gradient is that of the cross-entropy over the global batch
(`_globalize_ce`; the reference normalises it per GPU). Together with the data stream this makes N processes
train like one with the same total batch. Logging values are means over the logging period, not medians.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn
from tqdm import tqdm

from ifc_sdk.checkpoint import (
    WEIGHTS_NAME,
    check_finite,
    convert_reference_state_dict,
    load_state_dict_strict,
    save_pretrained,
)
from ifc_sdk.data.coco import COCODataset
from ifc_sdk.data.ytvis import ClipDataset, YTVISDataset
from ifc_sdk.errors import CheckpointError, ConfigError
from ifc_sdk.io.atomic import atomic_write_text
from ifc_sdk.modeling.build import build_ifc
from ifc_sdk.modeling.ifc import IFC
from ifc_sdk.training import distributed as du
from ifc_sdk.training.criterion import IFCCriterion
from ifc_sdk.training.imagenet import load_imagenet_backbone, torchvision_imagenet_state_dict
from ifc_sdk.training.loader import (
    ClipBatches,
    build_loader,
    build_mapper,
    clip_instances,
    local_padded_size,
    pad_clips,
)
from ifc_sdk.training.recipes import Recipe, get_recipe
from ifc_sdk.training.scratch import calibrate_frozen_bn
from ifc_sdk.training.targets import prepare_targets
from ifc_sdk.training.validate import evaluate_model

STATE_NAME = "training_state.pt"
LAST_CHECKPOINT = "last_checkpoint"
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


# --------------------------------------------------------------------------------------------------- weights
def class_head_keys(state_dict: Mapping[str, Any]) -> list[str]:
    """Keys of the last layer of the class head (``class_embed.layers.<last>.*``)."""
    layers = sorted({int(k.split(".")[2]) for k in state_dict if k.startswith("class_embed.layers.")})
    if not layers:
        return []
    prefix = f"class_embed.layers.{layers[-1]}."
    return sorted(k for k in state_dict if k.startswith(prefix))


def read_model_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """SDK-keyed IFC weights from a model folder, a ``.safetensors`` file or a reference ``.pth``."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_NAME
    if not path.is_file():
        raise CheckpointError(path, "no such checkpoint (expected a model folder, .safetensors or .pth)")
    if path.suffix == ".safetensors":
        return load_file(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(path, f"not a readable checkpoint ({type(exc).__name__}: {exc})") from exc
    state = obj.get("model", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(path, "expected {'model': state_dict} or a state dict")
    return convert_reference_state_dict(state)


def _is_ifc_state(keys) -> bool:
    return any(k.startswith(("query_embed.", "detr.query_embed.")) for k in keys)


def load_finetune_init(
    model: IFC,
    state_dict: Mapping[str, torch.Tensor],
    *,
    drop_class_head: bool | None = None,
    path: str | os.PathLike | None = None,
) -> list[str]:
    """Initialise ``model`` from a previous stage's weights (e.g. COCO -> YouTube-VIS).

    The last class-head layer (``class_embed.layers.<last>.*``) is dropped (left at its fresh initialisation)
    when ``drop_class_head`` is True, or, by default (None), when its shape differs from the model's, which is
    what detectron2's checkpointer does for 80 -> 40 classes. Every other weight must fit exactly.

    Returns:
        The dropped keys.
    """
    state = dict(state_dict)
    check_finite(state, path)
    head = class_head_keys(state)
    expected = model.state_dict()
    mismatch = any(k in expected and tuple(expected[k].shape) != tuple(state[k].shape) for k in head)
    drop = mismatch if drop_class_head is None else drop_class_head
    dropped = head if drop else []
    if drop:
        for k in head:
            state[k] = expected[k]
    load_state_dict_strict(model, state, path)
    return dropped


def freeze_backbone(model: IFC, freeze_at: int) -> list[str]:
    """detectron2's ``FREEZE_AT``: 1 freezes the stem, 2 the stem and res2, ... Returns the frozen names."""
    stages = ["stem", "res2", "res3", "res4", "res5"][: max(0, freeze_at)]
    frozen = []
    for name, p in model.backbone.named_parameters():
        if name.split(".")[0] in stages:
            p.requires_grad_(False)
            frozen.append(f"backbone.{name}")
    return frozen


def build_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; backbone learning rate x ``backbone_multiplier``."""
    backbone, rest = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (backbone if "backbone" in name else rest).append(p)
    groups = [{"params": rest, "lr": recipe.base_lr}]
    if backbone:
        groups.append({"params": backbone, "lr": recipe.base_lr * recipe.backbone_multiplier})
    return torch.optim.AdamW(groups, lr=recipe.base_lr, betas=recipe.betas, weight_decay=recipe.weight_decay)


# ------------------------------------------------------------------------------------------------------ data
def resolve_annotations(path: str | os.PathLike) -> Path:
    """An annotation JSON: ``path`` itself, or ``annotations.json`` / ``train.json`` in the folder ``path``."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        for name in ("annotations.json", "train.json"):
            if (path / name).is_file():
                return path / name
        raise ConfigError(f"{path}: no annotations.json or train.json in this folder; pass the JSON itself")
    raise ConfigError(f"{path}: no such dataset file or folder")


def load_dataset(path: str | os.PathLike, fmt: str) -> ClipDataset:
    json_path = resolve_annotations(path)
    return COCODataset.from_json(json_path) if fmt == "coco" else YTVISDataset.from_json(json_path)


# ------------------------------------------------------------------------------------------------ RNG state
def _rng_state(device: torch.device) -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": (np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])),
        "python": random.getstate(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


# --------------------------------------------------------------------------------------------------- trainer
@dataclass
class TrainResult:
    """What a run produced: the output folder, the final model folder (None if stopped early), the
    iteration reached, the last logged loss and the last evaluation's metrics."""

    out_dir: Path
    model_dir: Path | None
    iteration: int
    loss: float | None
    metrics: dict[str, float] | None
    wall_time: float


class Trainer:
    """Runs one `Recipe`. See `train` for the arguments."""

    def __init__(
        self,
        recipe: Recipe,
        data: str | os.PathLike,
        out: str | os.PathLike,
        *,
        init: str | os.PathLike | None = None,
        resume: bool = False,
        val: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        precision: str = "auto",
        num_workers: int | None = None,
        eval_every: int | None = None,
        checkpoint_every: int | None = None,
        log_every: int = 20,
        max_eval_videos: int | None = None,
        stop_after: int | None = None,
        drop_class_head: bool | None = None,
        progress: bool = True,
        keep_checkpoints: int | None = None,
        global_ce: bool = True,
    ) -> None:
        self.recipe = recipe
        self.out = Path(out)
        self.init = init
        self.resume = resume
        self.num_workers = recipe.num_workers if num_workers is None else num_workers
        self.eval_every = recipe.eval_period if eval_every is None else eval_every
        self.checkpoint_every = recipe.checkpoint_period if checkpoint_every is None else checkpoint_every
        self.log_every = max(1, log_every)
        self.max_eval_videos = max_eval_videos
        self.stop_after = stop_after
        self.drop_class_head = drop_class_head
        self.keep_checkpoints = keep_checkpoints
        self.global_ce = global_ce
        self.dist = du.setup(device)
        self.show_progress = progress and self.dist.is_main
        self.precision = self._resolve_precision(precision)

        self.train_set = load_dataset(data, recipe.dataset_format)
        self.val_set = YTVISDataset.from_json(resolve_annotations(val)) if val is not None else None
        self.args = {
            "data": str(data),
            "out": str(out),
            "init": None if init is None else str(init),
            "val": None if val is None else str(val),
            "precision": self.precision,
            "world_size": self.dist.world_size,
            "num_workers": self.num_workers,
        }

    # ---------------------------------------------------------------------------------------------- setup
    def _resolve_precision(self, precision: str) -> str:
        if precision == "auto":
            if self.dist.device.type == "cuda":
                return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            return "fp32"
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be 'auto' or one of {sorted(PRECISIONS)}, got {precision!r}")
        if precision == "fp16" and self.dist.device.type != "cuda":
            raise ConfigError("fp16 training needs a CUDA device (use fp32 or bf16 on the CPU)")
        return precision

    def build_model(self, initialise: bool = True) -> IFC:
        """The recipe's model with the training set's categories, initialised as ``init`` says (skipped with
        ``initialise=False``, when a checkpoint will be loaded)."""
        config = self.recipe.model_config(
            num_classes=self.train_set.num_classes, categories=self.train_set.class_names
        )
        _seed_all(self.recipe.seed)  # the same initial weights on every process
        model = build_ifc(config)
        self.init_info = self._initialise(model) if initialise else {"source": "resumed"}
        self.frozen = freeze_backbone(model, self.recipe.freeze_at)
        return model

    def _initialise(self, model: IFC) -> dict[str, Any]:
        init = self.init
        if init is None or str(init) == "scratch":
            if self.recipe.init != "scratch" and self.dist.is_main:
                print(
                    f"note: recipe {self.recipe.name!r} starts from {self.recipe.init} weights "
                    f"({self.recipe.imagenet_weights or 'a previous stage'}) but no --init was given: "
                    "training from random initialisation",
                    file=sys.stderr,
                )
            return {"source": "scratch"}
        if str(init) == "torchvision":
            unused = load_imagenet_backbone(
                model.backbone, torchvision_imagenet_state_dict(model.config.depth)
            )
            return {"source": "torchvision", "unused": len(unused)}
        path = Path(init)
        if path.suffix == ".pkl":
            unused = load_imagenet_backbone(model.backbone, path)
            return {"source": str(path), "kind": "imagenet", "unused": len(unused)}
        if path.suffix == ".pth" and path.is_file():
            obj = torch.load(path, map_location="cpu", weights_only=True)
            state = obj.get("model", obj) if isinstance(obj, dict) else {}
            if not _is_ifc_state(state):
                unused = load_imagenet_backbone(model.backbone, path)
                return {"source": str(path), "kind": "imagenet", "unused": len(unused)}
        dropped = load_finetune_init(
            model, read_model_state(path), drop_class_head=self.drop_class_head, path=path
        )
        return {"source": str(path), "kind": "checkpoint", "dropped": dropped}

    def _resume_checkpoint(self) -> Path | None:
        marker = self.out / LAST_CHECKPOINT
        if not marker.is_file():
            return None
        folder = self.out / marker.read_text().strip()
        if not (folder / STATE_NAME).is_file():
            raise CheckpointError(folder, f"{LAST_CHECKPOINT} names a checkpoint without {STATE_NAME}")
        return folder

    # ------------------------------------------------------------------------------------------ checkpoint
    def save_checkpoint(self, model: IFC, optimizer, scheduler, scaler, iteration: int) -> Path | None:
        """Write ``checkpoints/iter_<iteration>`` atomically (rank 0), then point ``last_checkpoint`` at it."""
        rng = du.all_gather_object(_rng_state(self.dist.device), self.dist)
        if not self.dist.is_main:
            return None
        root = self.out / "checkpoints"
        name = f"iter_{iteration:07d}"
        tmp, final = root / f".{name}.tmp", root / name
        shutil.rmtree(tmp, ignore_errors=True)
        save_pretrained(model, tmp)
        state = {
            "iteration": iteration,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": rng,
            "world_size": self.dist.world_size,
            "recipe": json.dumps(self.recipe.to_dict()),
        }
        torch.save(state, tmp / STATE_NAME)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        atomic_write_text(self.out / LAST_CHECKPOINT, f"checkpoints/{name}\n")
        if self.keep_checkpoints:
            old = sorted(p for p in root.glob("iter_*") if p.is_dir())[: -self.keep_checkpoints]
            for p in old:
                shutil.rmtree(p, ignore_errors=True)
        return final

    def load_checkpoint(self, folder: Path, model: IFC, optimizer, scheduler, scaler) -> int:
        """Restore weights, optimizer, scheduler, scaler and this process's RNG; returns the next iteration."""
        state_dict = load_file(folder / WEIGHTS_NAME)
        load_state_dict_strict(model, state_dict, folder)
        state = torch.load(folder / STATE_NAME, map_location="cpu", weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        iteration = int(state["iteration"])
        rng = state.get("rng") or []
        if len(rng) == self.dist.world_size:
            self._pending_rng = rng[self.dist.rank]
        else:
            if self.dist.is_main:
                print(
                    f"note: the checkpoint was written by {len(rng)} process(es), this run has "
                    f"{self.dist.world_size}: random states are re-seeded",
                    file=sys.stderr,
                )
            self._pending_rng = None
            _seed_all(self.recipe.seed + 1000 * iteration + self.dist.rank)
        return iteration

    # ---------------------------------------------------------------------------------------------- logging
    def _open_metrics(self, start_iter: int):
        path = self.out / "metrics.jsonl"
        if self.dist.is_main:
            if path.is_file():  # drop what a previous run logged after the checkpoint we resume from
                kept = [
                    line
                    for line in path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("iteration", 0) <= start_iter
                ]
                atomic_write_text(path, "".join(line + "\n" for line in kept))
            self._metrics_file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in run)
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.out / "tensorboard"))
            except ImportError:
                self._tb = None
        return path

    def _log(self, record: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        self._metrics_file.write(json.dumps(record) + "\n")
        self._metrics_file.flush()
        if self._tb is not None:
            for k, v in record.items():
                if k != "iteration" and isinstance(v, int | float):
                    self._tb.add_scalar(k, v, record["iteration"])

    # ------------------------------------------------------------------------------------------------- loop
    def evaluate(self, model: IFC, iteration: int) -> dict[str, float] | None:
        """Evaluate on the val split (rank 0; the others wait). RNG states are left untouched."""
        metrics = None
        if self.val_set is not None and self.dist.is_main:
            with torch.random.fork_rng(devices=[self.dist.device] if self.dist.device.type == "cuda" else []):
                category_ids = sorted(c.id for c in self.train_set.categories)
                metrics, entries = evaluate_model(
                    model,
                    self.val_set,
                    window=self.recipe.test_window,
                    stride=self.recipe.test_stride,
                    size=self.recipe.test_size,
                    category_ids=category_ids,
                    max_videos=self.max_eval_videos,
                )
            atomic_write_text(self.out / "eval_results.json", json.dumps(entries))
            self._log({"iteration": iteration, **{f"eval/{k}": v for k, v in metrics.items()}})
            if self.show_progress:
                tqdm.write(
                    f"iteration {iteration}: AP {metrics['AP']:.3f}  AP50 {metrics['AP50']:.3f}  "
                    f"AR10 {metrics['AR10']:.3f}"
                )
        du.barrier(self.dist)
        return metrics

    def run(self) -> TrainResult:
        recipe, info = self.recipe, self.dist
        t_start = time.time()
        resume_from = self._resume_checkpoint() if self.resume else None
        if resume_from is None and not self.resume and (self.out / LAST_CHECKPOINT).exists():
            raise ConfigError(
                f"{self.out} already holds a training run; pass resume=True (--resume) to "
                "continue it, or choose another output folder"
            )
        if info.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        du.barrier(info)

        model = self.build_model(initialise=resume_from is None).to(info.device)
        model.train()
        criterion = IFCCriterion(
            model.num_classes,
            class_weight=recipe.class_weight,
            mask_weight=recipe.mask_weight,
            dice_weight=recipe.dice_weight,
            no_object_weight=recipe.no_object_weight,
        ).to(info.device)
        mapper = build_mapper(recipe, self.train_set.class_index)
        if resume_from is None and recipe.calibrate_bn and self.init_info["source"] == "scratch":
            # The global batch of iteration 0 on every process, so all compute the same statistics.
            clips = ClipBatches(self.train_set, mapper, batch_size=recipe.batch_size, seed=recipe.seed)[0]
            images, _ = pad_clips(clips, model.normalize, local_padded_size(clips), info.device)
            self.init_info["calibrated_bn"] = calibrate_frozen_bn(model.backbone, images.flatten(0, 1))
        optimizer = build_optimizer(model, recipe)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: recipe.lr_factor(it))
        scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        self._pending_rng = None
        start_iter = 0
        if resume_from is not None:
            start_iter = self.load_checkpoint(resume_from, model, optimizer, scheduler, scaler)
        else:
            _seed_all(recipe.seed + info.rank)  # per-process dropout streams
        if info.is_main:
            atomic_write_text(
                self.out / "recipe.json",
                json.dumps(
                    {
                        "recipe": recipe.to_dict(),
                        "args": self.args,
                        "start_iteration": start_iter,
                        "init": self.init_info if resume_from is None else {"resume": str(resume_from)},
                    },
                    indent=2,
                )
                + "\n",
            )

        ddp_model: nn.Module = model
        if info.distributed:
            ddp_model = nn.parallel.DistributedDataParallel(
                model,
                device_ids=[info.device.index] if info.device.type == "cuda" else None,
                broadcast_buffers=False,
                find_unused_parameters=False,
            )

        batches = ClipBatches(
            self.train_set,
            mapper,
            batch_size=recipe.batch_size,
            rank=info.rank,
            world_size=info.world_size,
            seed=recipe.seed,
        )
        stop = recipe.max_iter if self.stop_after is None else min(recipe.max_iter, self.stop_after)
        loader = iter(build_loader(batches, start_iter, stop, self.num_workers))
        if self._pending_rng is not None:  # after the loader exists: nothing may draw from it in between
            _set_rng_state(self._pending_rng, info.device)

        self._open_metrics(start_iter)
        params = [p for p in model.parameters() if p.requires_grad]
        autocast_dtype = PRECISIONS[self.precision]
        bar = tqdm(
            total=recipe.max_iter,
            initial=start_iter,
            desc=recipe.name,
            unit="it",
            disable=not self.show_progress,
            dynamic_ncols=True,
        )
        sums: dict[str, float] = {}
        count = 0
        last_loss, metrics = None, None
        iteration = start_iter
        try:
            for iteration in range(start_iter, stop):
                t0 = time.perf_counter()
                clips = next(loader)
                t_data = time.perf_counter() - t0
                padded = pad_size(
                    du.all_reduce_max(list(local_padded_size(clips)), info), recipe.size_divisibility
                )
                images, sizes = pad_clips(clips, model.normalize, padded, info.device)
                targets = prepare_targets(
                    clip_instances(clips, info.device),
                    padded,
                    mask_stride=recipe.mask_stride,
                    match_stride=recipe.match_stride,
                )
                autocast = (
                    torch.autocast(info.device.type, dtype=autocast_dtype)
                    if autocast_dtype is not None
                    else contextlib.nullcontext()
                )
                with autocast:
                    outputs = ddp_model(images, sizes)
                outputs = _to_float(outputs, recipe.deep_supervision)
                losses = criterion(outputs, targets)
                if info.distributed and self.global_ce:
                    losses = _globalize_ce(
                        losses, targets, model.config.num_queries, recipe.no_object_weight, info
                    )
                loss = sum(v for k, v in losses.items() if k.startswith("loss_"))
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"loss is {loss.item()} at iteration {iteration}: {_scalars(losses)}"
                    )
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                else:
                    loss.backward()
                if recipe.clip_type == "full_model" and recipe.clip_value > 0:
                    torch.nn.utils.clip_grad_norm_(params, recipe.clip_value, recipe.clip_norm_type)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                lr = optimizer.param_groups[0]["lr"]
                scheduler.step()

                step = {
                    k: float(losses[k].detach()) for k in ("loss_ce", "loss_mask", "loss_dice", "class_error")
                }
                step.update(
                    {"loss": float(loss.detach()), "data_time": t_data, "time": time.perf_counter() - t0}
                )
                for k, v in step.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
                done = iteration + 1
                if done % self.log_every == 0 or done == stop:
                    means = du.all_reduce_mean({k: v / count for k, v in sums.items()}, info)
                    last_loss = means["loss"]
                    self._log({"iteration": done, "lr": lr, **{k: round(v, 6) for k, v in means.items()}})
                    bar.set_postfix(loss=f"{means['loss']:.3f}", lr=f"{lr:.2e}")
                    sums, count = {}, 0
                bar.update(1)
                if (
                    done == stop
                    and stop < recipe.max_iter
                    or (
                        self.checkpoint_every and done % self.checkpoint_every == 0 and done < recipe.max_iter
                    )
                ):
                    self.save_checkpoint(model, optimizer, scheduler, scaler, done)
                    du.barrier(info)
                if self.eval_every and done % self.eval_every == 0 and done < recipe.max_iter:
                    metrics = self.evaluate(model, done)
            iteration = stop
        finally:
            bar.close()
        model_dir = None
        if stop == recipe.max_iter:
            if info.is_main:
                model_dir = save_pretrained(model, self.out / "model_final")
            if self.val_set is not None and self.eval_every != -1:
                metrics = self.evaluate(model, stop)
            du.barrier(info)
        if info.is_main:
            self._metrics_file.close()
            if self._tb is not None:
                self._tb.close()
        return TrainResult(self.out, model_dir, iteration, last_loss, metrics, time.time() - t_start)


def pad_size(size: list[int] | tuple[int, int], divisibility: int) -> tuple[int, int]:
    """``(H, W)`` rounded up to multiples of ``divisibility`` (0 or 1: unchanged).

    With a multiple of 8, the stride-8 predictions and the stride-4 targets cover the same padded extent; otherwise
    the criterion's resize of ``ceil(H/8)`` onto ``ceil(H/4)`` cells (as in the reference) teaches the model a
    small stretch of its masks, noticeable at low resolution.
    """
    if divisibility <= 1:
        return int(size[0]), int(size[1])
    return tuple(-(-int(s) // divisibility) * divisibility for s in size)


def _to_float(outputs: dict, keep_aux: bool) -> dict:
    """Model outputs in fp32 for the loss (autocast may give bf16/fp16); aux layers dropped unless used."""
    out = {"pred_logits": outputs["pred_logits"].float(), "pred_masks": outputs["pred_masks"].float()}
    if keep_aux:
        out["aux_outputs"] = [
            {k: v.float() for k, v in aux.items()} for aux in outputs.get("aux_outputs", [])
        ]
    return out


def _globalize_ce(
    losses: dict[str, torch.Tensor],
    targets: list[dict],
    num_queries: int,
    no_object_weight: float,
    info: du.DistInfo,
) -> dict[str, torch.Tensor]:
    """Rescale this process's cross-entropy terms so that DDP's gradient average equals the gradient of the
    cross-entropy over the global batch.

    The criterion's weighted cross-entropy is normalised by this process's sum of class weights
    ``S_r = sum over its queries of (1 if matched else no_object_weight)``; averaging over W processes gives
    ``mean_r CE_r``, which differs from the single-process ``sum_r S_r CE_r / S``. Multiplying ``CE_r`` by
    ``W * S_r / S`` makes them equal (factor 1 on one process). The mask losses need nothing: the criterion
    already normalises them by the global number of masks.
    """
    matched = sum(min(num_queries, len(t["labels"])) for t in targets)
    local = matched + (len(targets) * num_queries - matched) * no_object_weight
    total = torch.tensor([float(local)], dtype=torch.float64, device=info.device)
    torch.distributed.all_reduce(total)
    scale = info.world_size * local / float(total.item())
    return {k: (v * scale if k == "loss_ce" or k.startswith("loss_ce_") else v) for k, v in losses.items()}


def _scalars(losses: Mapping[str, torch.Tensor]) -> dict[str, float]:
    return {k: round(float(v), 4) for k, v in losses.items()}


def train(
    recipe: str | Recipe,
    data: str | os.PathLike,
    out: str | os.PathLike,
    init: str | os.PathLike | None = None,
    resume: bool = False,
    *,
    val: str | os.PathLike | None = None,
    iters: int | None = None,
    batch: int | None = None,
    eval_every: int | None = None,
    checkpoint_every: int | None = None,
    device: str | torch.device | None = None,
    precision: str = "auto",
    num_workers: int | None = None,
    log_every: int = 20,
    max_eval_videos: int | None = None,
    stop_after: int | None = None,
    drop_class_head: bool | None = None,
    progress: bool = True,
    keep_checkpoints: int | None = None,
    global_ce: bool = True,
    **overrides,
) -> TrainResult:
    """Train IFC with a recipe, on one process or under ``torchrun`` (DDP).

    Args:
        recipe: a `Recipe` or the name of one (``"r50_ytvis"``, ``"demo_coco"``, ...; see ``RECIPES``).
        data: the training annotation JSON, or a folder holding ``annotations.json`` (COCO format for the
            ``*_coco`` recipes, YouTube-VIS format otherwise).
        out: output folder (see the module docstring).
        init: weights to start from: a previous stage's model (SDK folder, ``.safetensors`` or reference
            ``.pth``; the class head is dropped when its shape differs), ImageNet backbone weights (a detectron2
            ``.pkl`` or a torchvision ResNet ``.pth``), ``"torchvision"`` (download the ImageNet weights
            through torchvision) or None / ``"scratch"``.
        resume: continue from ``out/last_checkpoint`` (exactly: same weights as an uninterrupted run).
        val: a YouTube-VIS split to evaluate on (every ``eval_every`` iterations and at the end).
        iters, batch: override ``max_iter`` and the total ``batch_size`` (steps beyond ``iters`` are ignored).
        eval_every, checkpoint_every: periods in iterations (default: the recipe's; 0 = never).
        device: "cpu", "cuda", "cuda:1"; default CUDA when available (``cuda:LOCAL_RANK`` under torchrun).
        precision: "auto" (bf16 autocast on CUDA if supported, else fp16; fp32 on the CPU), "fp32", "bf16",
            "fp16".
        num_workers: DataLoader worker processes per training process (default: the recipe's).
        stop_after: stop (with a checkpoint) after this many iterations without changing the schedule.
        drop_class_head: see `load_finetune_init` (default: drop when the shape differs).
        keep_checkpoints: keep only the newest N checkpoints.
        global_ce: under DDP, normalise the cross-entropy over the global batch (see `_globalize_ce`), so N
            processes train exactly like one; False keeps the reference's per-process normalisation.
        overrides: further `Recipe` fields, e.g. ``base_lr=2e-4``, ``steps=(800,)``.
    """
    r = get_recipe(recipe) if isinstance(recipe, str) else recipe
    changes = dict(overrides)
    if iters is not None:
        changes["max_iter"] = iters
    if batch is not None:
        changes["batch_size"] = batch
    if changes:
        r = r.replace(**changes)
    trainer = Trainer(
        r,
        data,
        out,
        init=init,
        resume=resume,
        val=val,
        device=device,
        precision=precision,
        num_workers=num_workers,
        eval_every=eval_every,
        checkpoint_every=checkpoint_every,
        log_every=log_every,
        max_eval_videos=max_eval_videos,
        stop_after=stop_after,
        drop_class_head=drop_class_head,
        progress=progress,
        keep_checkpoints=keep_checkpoints,
        global_ce=global_ce,
    )
    try:
        return trainer.run()
    finally:
        du.cleanup(trainer.dist)


__all__ = [
    "TrainResult",
    "Trainer",
    "build_optimizer",
    "class_head_keys",
    "freeze_backbone",
    "load_finetune_init",
    "read_model_state",
    "train",
]
