"""The IFC training loop: a `Recipe` on one process or on torch DDP (``torchrun``), with exact resume.

`Trainer.run` builds the model (`init_weights`), restores a checkpoint (`state`), then repeats one optimisation
step (`step`) per iteration, logging (`run_log`), checkpointing and evaluating periodically. The stem and res2
are frozen (``freeze_at=2``); every FrozenBN is frozen anyway. Logging values are means over the logging period,
not medians.

Output folder::

    out/
      recipe.json                  the recipe and arguments of the run
      metrics.jsonl                one JSON line per logging step / evaluation
      checkpoints/iter_0000500/    model.safetensors + config.json (save_pretrained) + training_state.pt
      last_checkpoint              "checkpoints/iter_0000500" (written after the folder is complete)
      model_final/                 model.safetensors + config.json at the end
      eval_results.json            YouTube-VIS results of the latest evaluation

The run writes only these names: anything else in ``out`` (or inside its folders) stays untouched, and the
temporaries of a killed run are swept when the next run starts. With the data stream a function of (seed,
iteration) (`ifc_sdk.training.loader`), ``resume=True`` continues to the same weights as an uninterrupted run.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ifc_sdk.data.ytvis import YTVISDataset
from ifc_sdk.errors import ConfigError, OutputError
from ifc_sdk.io.atomic import ensure_dir, sweep_temporaries
from ifc_sdk.modeling.build import build_ifc
from ifc_sdk.modeling.ifc import IFC
from ifc_sdk.training import distributed as du
from ifc_sdk.training.criterion import IFCCriterion
from ifc_sdk.training.init_weights import (
    class_head_keys,
    freeze_backbone,
    load_finetune_init,
    load_initial_weights,
    read_model_state,
)
from ifc_sdk.training.loader import (
    ClipBatches,
    build_loader,
    build_mapper,
    load_dataset,
    local_padded_size,
    pad_clips,
    resolve_annotations,
)
from ifc_sdk.training.recipes import Recipe, get_recipe
from ifc_sdk.training.run_log import EVAL_RESULTS_NAME, METRICS_NAME, RECIPE_NAME, RunLog
from ifc_sdk.training.scratch import calibrate_frozen_bn
from ifc_sdk.training.state import (
    LAST_CHECKPOINT,
    Checkpoints,
    seed_all,
    set_rng_state,
    write_model_folder,
)
from ifc_sdk.training.step import PRECISIONS, StepRunner, build_optimizer, pad_size
from ifc_sdk.training.validate import evaluate_model

MODEL_FINAL = "model_final"
OUT_NAMES = (RECIPE_NAME, METRICS_NAME, EVAL_RESULTS_NAME, LAST_CHECKPOINT, MODEL_FINAL)


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
        self.global_ce = global_ce
        self.dist = du.setup(device)
        self.precision = self._resolve_precision(precision)
        self.checkpoints = Checkpoints(self.out, self.dist, recipe, keep_checkpoints)
        self.log = RunLog(self.out, main=self.dist.is_main, progress=progress)

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
        seed_all(self.recipe.seed)  # the same initial weights on every process
        model = build_ifc(config)
        self.init_info = {"source": "resumed"}
        if initialise:
            self.init_info = load_initial_weights(
                model, self.init, self.recipe, drop_class_head=self.drop_class_head, verbose=self.dist.is_main
            )
        self.frozen = freeze_backbone(model, self.recipe.freeze_at)
        return model

    def _prepare_out(self) -> Path | None:
        """Check and create the output folder (main process), sweep a killed run's temporaries; returns the
        checkpoint to resume from."""
        if self.out.exists() and not self.out.is_dir():
            raise OutputError(self.out, "the output folder is an existing file, not a folder")
        resume_from = self.checkpoints.latest() if self.resume else None
        if resume_from is None and not self.resume and (self.out / LAST_CHECKPOINT).exists():
            raise ConfigError(
                f"{self.out} already holds a training run; pass resume=True (--resume) to "
                "continue it, or choose another output folder"
            )
        if self.dist.is_main:
            ensure_dir(self.out)
            sweep_temporaries(self.out, "|".join(re.escape(name) for name in OUT_NAMES))
            self.checkpoints.sweep()
        du.barrier(self.dist)
        return resume_from

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
            self.log.evaluation(iteration, metrics, entries)
        du.barrier(self.dist)
        return metrics

    def run(self) -> TrainResult:
        """Train to the recipe's ``max_iter`` (or ``stop_after``); see `train`."""
        try:
            return self._run()
        finally:
            self.log.close()

    def _run(self) -> TrainResult:
        recipe, info = self.recipe, self.dist
        t_start = time.time()
        resume_from = self._prepare_out()
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
        pending_rng, start_iter = None, 0
        if resume_from is not None:
            start_iter, pending_rng = self.checkpoints.load(resume_from, model, optimizer, scheduler, scaler)
        else:
            seed_all(recipe.seed + info.rank)  # per-process dropout streams
        self.log.write_recipe(
            {
                "recipe": recipe.to_dict(),
                "args": self.args,
                "start_iteration": start_iter,
                "init": self.init_info if resume_from is None else {"resume": str(resume_from)},
            }
        )

        ddp_model: nn.Module = model
        if info.distributed:
            ddp_model = nn.parallel.DistributedDataParallel(
                model,
                device_ids=[info.device.index] if info.device.type == "cuda" else None,
                broadcast_buffers=False,
                find_unused_parameters=False,
            )
        parts = (model, ddp_model, criterion, optimizer, scheduler, scaler, recipe, info)
        step = StepRunner(*parts, precision=self.precision, global_ce=self.global_ce)
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
        if pending_rng is not None:  # after the loader exists: nothing may draw from it in between
            set_rng_state(pending_rng, info.device)

        self.log.open(start_iter, recipe.max_iter, recipe.name)
        sums: dict[str, float] = {}
        count = 0
        last_loss, metrics = None, None
        for iteration in range(start_iter, stop):
            t0 = time.perf_counter()
            clips = next(loader)
            t_data = time.perf_counter() - t0
            logged, lr = step(clips, iteration)
            logged.update({"data_time": t_data, "time": time.perf_counter() - t0})
            for k, v in logged.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
            done = iteration + 1
            if done % self.log_every == 0 or done == stop:
                means = du.all_reduce_mean({k: v / count for k, v in sums.items()}, info)
                last_loss = means["loss"]
                self.log.log({"iteration": done, "lr": lr, **{k: round(v, 6) for k, v in means.items()}})
                self.log.step(means["loss"], lr)
                sums, count = {}, 0
            else:
                self.log.step()
            periodic = self.checkpoint_every and done % self.checkpoint_every == 0 and done < recipe.max_iter
            if (done == stop and stop < recipe.max_iter) or periodic:
                self.checkpoints.save(model, optimizer, scheduler, scaler, done)
                du.barrier(info)
            if self.eval_every and done % self.eval_every == 0 and done < recipe.max_iter:
                metrics = self.evaluate(model, done)
        self.log.close_bar()
        model_dir = None
        if stop == recipe.max_iter:
            if info.is_main:
                model_dir = write_model_folder(model, self.out / MODEL_FINAL)
            if self.val_set is not None and self.eval_every != -1:
                metrics = self.evaluate(model, stop)
            du.barrier(info)
        return TrainResult(self.out, model_dir, stop, last_loss, metrics, time.time() - t_start)


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
        global_ce: under DDP, normalise the cross-entropy over the global batch (see `ifc_sdk.training.step.globalize_ce`), so N
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


# The weight and step helpers lived here before the split; they stay importable from this module.
__all__ = [
    "TrainResult",
    "Trainer",
    "build_optimizer",
    "class_head_keys",
    "freeze_backbone",
    "load_finetune_init",
    "pad_size",
    "read_model_state",
    "train",
]
