"""Training data: a seeded, sharded, infinite stream of augmented clips, batched and padded.

The stream is defined globally, independent of the number of processes and workers: position ``p`` of the
stream is dataset item ``order(p)`` (a fresh permutation of the dataset per pass, drawn from ``seed`` and the
pass number), augmented with a `random.Random` seeded from ``(seed, p)``. The global batch of iteration ``i``
is positions ``i * B ... (i + 1) * B - 1``; process ``r`` of ``W`` builds the contiguous share
``i * B + r * B / W ... i * B + (r + 1) * B / W - 1`` (like detectron2's ``TrainingSampler``, which shards an
infinite seeded stream, but sharded by batch so that the union over processes is the same global batch for
any ``W``). The data of an iteration therefore depends only on (seed, iteration): resuming needs nothing but
the iteration number, and N processes see exactly the clips one process would.

`ClipBatches` is a map-style dataset whose item ``i`` is this process's share of iteration ``i`` (built in a
DataLoader worker); `pad_clips` normalises and zero-pads it on the training device in the main process, to a
size that can be agreed on by all processes (so the padded batch, and with it the loss, does not depend on
how the global batch is split).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ifc_sdk.data.coco import COCODataset
from ifc_sdk.data.transforms import COCOClipMapper, YTVISClipMapper
from ifc_sdk.data.ytvis import ClipDataset, YTVISDataset
from ifc_sdk.errors import ConfigError
from ifc_sdk.training.recipes import Recipe

Mapper = Callable[[Any, random.Random], dict[str, Any]]


def sample_seed(seed: int, position: int) -> int:
    """Seed of the augmentation RNG of stream position ``position``."""
    return int(np.random.SeedSequence([seed, position]).generate_state(1, dtype=np.uint64)[0])


class ClipStream:
    """The global stream: position -> dataset index, reshuffled on every pass over the dataset."""

    def __init__(self, num_items: int, seed: int) -> None:
        if num_items <= 0:
            raise ConfigError("the training set is empty")
        self.num_items = num_items
        self.seed = seed
        self._pass: int | None = None
        self._perm: np.ndarray | None = None

    def index(self, position: int) -> int:
        epoch, offset = divmod(position, self.num_items)
        if epoch != self._pass:
            self._perm = np.random.default_rng([self.seed, epoch, 0x5EED]).permutation(self.num_items)
            self._pass = epoch
        return int(self._perm[offset])


def shard_positions(iteration: int, batch_size: int, rank: int, world_size: int) -> range:
    """Stream positions of process ``rank``'s share of iteration ``iteration``'s global batch."""
    if batch_size % world_size:
        raise ConfigError(
            f"the total batch size {batch_size} must be divisible by the {world_size} processes"
        )
    per_rank = batch_size // world_size
    start = iteration * batch_size + rank * per_rank
    return range(start, start + per_rank)


def build_mapper(recipe: Recipe, class_index: dict[int, int]) -> Mapper:
    """The clip mapper of ``recipe`` (COCO pseudo-clips or YouTube-VIS clips)."""
    flip_prob = 0.0 if recipe.flip == "none" else 0.5
    if recipe.dataset_format == "coco":
        if recipe.flip == "flip_by_clip" and recipe.num_frames > 1:
            raise ConfigError("COCO pseudo-clips flip each frame independently ('horizontal'), not by clip")
        return COCOClipMapper(
            class_index,
            num_frames=recipe.num_frames,
            crop_range=recipe.crop,
            min_sizes=recipe.min_sizes,
            max_size=recipe.max_size,
            flip_prob=flip_prob,
        )
    if recipe.flip == "horizontal" or recipe.min_size_sampling != "choice_by_clip":
        raise ConfigError(
            "video clips support min_size_sampling 'choice_by_clip' and flip 'flip_by_clip' or 'none' "
            "(the reference YouTube-VIS recipe)"
        )
    return YTVISClipMapper(
        class_index,
        num_frames=recipe.num_frames,
        frame_range=recipe.frame_range,
        min_sizes=recipe.min_sizes,
        max_size=recipe.max_size,
        flip_prob=flip_prob,
        crop_range=recipe.crop,
    )


class ClipBatches(torch.utils.data.Dataset):
    """Item ``i``: this process's share of the global batch of iteration ``i`` (a list of mapped clips).

    Args:
        dataset: the training split.
        mapper: turns ``(record, rng)`` into a clip dict (``ifc_sdk.data.transforms``).
        batch_size: global batch size B (clips per iteration over all processes).
        rank, world_size: this process's shard.
        seed: seed of the stream.
    """

    def __init__(
        self,
        dataset: ClipDataset,
        mapper: Mapper,
        *,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
    ) -> None:
        shard_positions(0, batch_size, rank, world_size)  # validates divisibility
        self.dataset = dataset
        self.mapper = mapper
        self.batch_size = batch_size
        self.rank, self.world_size = rank, world_size
        self.seed = seed
        self.stream = ClipStream(len(dataset), seed)

    def __len__(self) -> int:
        return 2**62  # infinite in practice; the sampler says which iterations are read

    def positions(self, iteration: int) -> range:
        return shard_positions(iteration, self.batch_size, self.rank, self.world_size)

    def __getitem__(self, iteration: int) -> list[dict[str, Any]]:
        clips = []
        for p in self.positions(iteration):
            record = self.dataset[self.stream.index(p)]
            clip = self.mapper(record, random.Random(sample_seed(self.seed, p)))
            clip["position"] = p
            clips.append(clip)
        return clips


def _identity(batch):
    return batch


def build_loader(
    batches: ClipBatches, start_iter: int, max_iter: int, num_workers: int = 0
) -> torch.utils.data.DataLoader:
    """A DataLoader over iterations ``start_iter .. max_iter - 1`` of ``batches`` (in order).

    The loader has its own generator, so creating it does not consume the global torch RNG (which would
    shift dropout masks after a resume).
    """
    return torch.utils.data.DataLoader(
        batches,
        batch_size=None,
        sampler=range(start_iter, max_iter),
        num_workers=num_workers,
        collate_fn=_identity,
        generator=torch.Generator().manual_seed(0),
        prefetch_factor=2 if num_workers > 0 else None,
        persistent_workers=False,
    )


def local_padded_size(clips: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """Largest frame ``(H, W)`` of a list of clips."""
    sizes = [tuple(c["frames"].shape[-2:]) for c in clips]
    return max(s[0] for s in sizes), max(s[1] for s in sizes)


def pad_clips(
    clips: Sequence[dict[str, Any]],
    normalize: Callable[[torch.Tensor], torch.Tensor],
    padded_size: tuple[int, int],
    device: torch.device,
) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Normalise and zero-pad (bottom/right, after normalisation like detectron2's ``ImageList``) a list of
    uint8 ``(T, 3, h, w)`` clips into float ``(B, T, 3, H, W)`` on ``device``; returns the images and each
    clip's unpadded ``(h, w)``."""
    h_pad, w_pad = padded_size
    t = clips[0]["frames"].shape[0]
    if any(c["frames"].shape[0] != t for c in clips):
        raise ConfigError("all clips of a batch must have the same number of frames")
    images = torch.zeros((len(clips), t, 3, h_pad, w_pad), dtype=torch.float32, device=device)
    sizes = []
    for i, clip in enumerate(clips):
        frames = clip["frames"].to(device, non_blocking=True)
        h, w = frames.shape[-2:]
        images[i, :, :, :h, :w] = normalize(frames)
        sizes.append((int(h), int(w)))
    return images, sizes


def clip_instances(
    clips: Sequence[dict[str, Any]], device: torch.device
) -> list[list[dict[str, torch.Tensor]]]:
    """Per clip, per frame instance dicts (``gt_classes``, ``gt_ids``, ``gt_masks``) moved to ``device``."""
    return [
        [{k: v.to(device, non_blocking=True) for k, v in frame.items()} for frame in clip["instances"]]
        for clip in clips
    ]


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
    """The training set: COCO-format images (``fmt="coco"``) or YouTube-VIS videos."""
    json_path = resolve_annotations(path)
    return COCODataset.from_json(json_path) if fmt == "coco" else YTVISDataset.from_json(json_path)


__all__ = [
    "ClipBatches",
    "ClipStream",
    "build_loader",
    "build_mapper",
    "clip_instances",
    "load_dataset",
    "local_padded_size",
    "pad_clips",
    "resolve_annotations",
    "sample_seed",
    "shard_positions",
]
