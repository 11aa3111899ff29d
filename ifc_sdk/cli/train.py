"""``ifc-sdk train``: train IFC with a recipe, on one process or under ``torchrun`` (DDP)."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path

from ifc_sdk.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` command."""
    from ifc_sdk.training.recipes import RECIPES

    parser = subparsers.add_parser(
        "train",
        help="train IFC with a recipe (COCO pre-training or YouTube-VIS fine-tuning)",
        description="Train IFC with one of the reference recipes (r50_coco, r101_coco, r50_ytvis, r101_ytvis) "
        "or the demo ones. Runs on one process, or on several under torchrun: "
        "`torchrun --nproc_per_node 8 -m ifc_sdk.cli train ...`. Checkpoints are written to OUT/checkpoints "
        "and --resume continues from the last one exactly.",
    )
    parser.add_argument("--recipe", required=True, choices=sorted(RECIPES), help="training recipe")
    parser.add_argument(
        "--data",
        required=True,
        type=Path,
        metavar="DIR",
        help="training annotation JSON, or a folder with annotations.json (COCO format for *_coco "
        "recipes, YouTube-VIS format otherwise)",
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="output folder (created if needed; only the run's own files in it are written)",
    )
    parser.add_argument(
        "--init",
        metavar="CKPT",
        help="starting weights: a previous stage's model (folder, .safetensors, reference .pth; "
        "the class head is dropped if its shape differs), ImageNet weights (detectron2 .pkl, "
        "torchvision .pth) or 'torchvision' (download); default: random",
    )
    parser.add_argument("--val", metavar="DIR", help="YouTube-VIS split to evaluate on")
    parser.add_argument("--iters", type=int, metavar="N", help="number of iterations (default: the recipe's)")
    parser.add_argument("--batch", type=int, metavar="B", help="total clips per iteration over all processes")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last_checkpoint")
    parser.add_argument("--eval-every", type=int, metavar="N", help="evaluate on --val every N iterations")
    parser.add_argument("--eval-videos", type=int, metavar="N", help="evaluate on the first N videos only")
    parser.add_argument("--checkpoint-every", type=int, metavar="N", help="checkpoint every N iterations")
    parser.add_argument("--device", help="cpu, cuda or cuda:K (default: cuda when available)")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "bf16", "fp16"),
        help="autocast precision (default: bf16/fp16 on CUDA, fp32 on the CPU)",
    )
    parser.add_argument("--workers", type=int, metavar="N", help="DataLoader workers per process")
    parser.add_argument("--threads", type=int, metavar="N", help="torch CPU threads per process")
    parser.add_argument(
        "--stop-after",
        type=int,
        metavar="N",
        help="stop after N iterations with a checkpoint (resume later with --resume)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a recipe field, e.g. --set base_lr=2e-4 --set steps=800,1200",
    )
    parser.add_argument(
        "--log-every",
        type=int,
        default=20,
        metavar="N",
        help="write mean losses to OUT/metrics.jsonl every N iterations (default: 20)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def parse_overrides(items: list[str]) -> dict:
    """``["base_lr=2e-4", "steps=800,1200"]`` -> typed `Recipe` field values."""
    from ifc_sdk.training.recipes import Recipe

    hints = typing.get_type_hints(Recipe)
    fields = {f.name for f in dataclasses.fields(Recipe)}
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in fields:
            raise ConfigError(
                f"--set expects FIELD=VALUE with a recipe field, got {item!r}; fields: {sorted(fields)}"
            )
        hint = str(hints[key])
        try:
            if value.lower() in ("none", "null") and "None" in hint:
                out[key] = None
            elif "tuple" in hint:
                kind = float if "float" in hint else int
                out[key] = tuple(kind(v) for v in value.split(",") if v.strip())
            elif hint.startswith("<class 'bool'>") or hint == "bool":
                out[key] = value.lower() in ("1", "true", "yes", "on")
            elif "int" in hint:
                out[key] = int(value)
            elif "float" in hint:
                out[key] = float(value)
            else:
                out[key] = value
        except ValueError as exc:
            raise ConfigError(f"--set {item!r}: {exc}") from exc
    return out


def run(args: argparse.Namespace) -> int:
    """Train and print where the model went."""
    import torch

    from ifc_sdk.training.trainer import train

    if args.threads:
        torch.set_num_threads(args.threads)
    result = train(
        args.recipe,
        args.data,
        args.out,
        init=args.init,
        resume=args.resume,
        val=args.val,
        iters=args.iters,
        batch=args.batch,
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
        device=args.device,
        precision=args.precision,
        num_workers=args.workers,
        max_eval_videos=args.eval_videos,
        stop_after=args.stop_after,
        log_every=args.log_every,
        progress=not args.no_progress,
        **parse_overrides(args.set),
    )
    if result.model_dir is not None:
        print(f"model: {result.model_dir}")
    else:
        print(f"stopped at iteration {result.iteration}; resume with --resume")
    if result.metrics:
        print(f"AP {result.metrics['AP']:.3f}  AP50 {result.metrics['AP50']:.3f}")
    return 0
