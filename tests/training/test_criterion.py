"""IFCCriterion, HungarianMatcher and prepare_targets against the reference training fixtures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ifc_sdk.training.criterion import IFCCriterion
from ifc_sdk.training.targets import prepare_targets

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "reference"
MODELS = ["r50_seed0", "r101_seed1"]
NUM_CLASSES = 40
TARGET_KEYS = ("labels", "ids", "masks", "match_masks")


def _load(name: str) -> dict[str, torch.Tensor]:
    path = REFERENCE / f"{name}_train.safetensors"
    if not path.exists():
        pytest.skip(f"reference training fixture {path} not found (expected ../shared beside the repository)")
    return load_file(str(path))


def _outputs(fx: dict[str, torch.Tensor], requires_grad: bool = False) -> dict:
    def layer(prefix: str) -> dict[str, torch.Tensor]:
        return {
            k: fx[f"{prefix}.{k}"].clone().requires_grad_(requires_grad)
            for k in ("pred_logits", "pred_masks")
        }

    return {**layer("out"), "aux_outputs": [layer("out.aux0"), layer("out.aux1")]}


def _fixture_targets(fx: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    return [{k: fx[f"target{v}.{k}"] for k in TARGET_KEYS} for v in range(2)]


def _frame_instances(fx: dict[str, torch.Tensor]) -> list[list[dict[str, torch.Tensor]]]:
    return [
        [{k: fx[f"video{v}.frame{f}.{k}"] for k in ("gt_classes", "gt_ids", "gt_masks")} for f in range(3)]
        for v in range(2)
    ]


@pytest.mark.parametrize("name", MODELS)
def test_prepare_targets_matches_reference(name: str) -> None:
    fx = _load(name)
    padded = (
        max(fx[f"video{v}.frames"].shape[-2] for v in range(2)),
        max(fx[f"video{v}.frames"].shape[-1] for v in range(2)),
    )
    ours = prepare_targets(_frame_instances(fx), padded)
    for v, ref in enumerate(_fixture_targets(fx)):
        assert torch.equal(ours[v]["labels"], ref["labels"])
        assert torch.equal(ours[v]["ids"], ref["ids"])
        for key in ("masks", "match_masks"):
            assert ours[v][key].dtype == torch.float32
            torch.testing.assert_close(ours[v][key], ref[key], rtol=0, atol=1e-6)
    # the default padded size is the largest frame of the batch
    default = prepare_targets(_frame_instances(fx))
    assert all(torch.equal(a["masks"], b["masks"]) for a, b in zip(ours, default, strict=True))


@pytest.mark.parametrize("source", ["fixture", "prepared"])
@pytest.mark.parametrize("name", MODELS)
def test_losses_match_reference(name: str, source: str) -> None:
    fx = _load(name)
    targets = _fixture_targets(fx) if source == "fixture" else prepare_targets(_frame_instances(fx))
    losses = IFCCriterion(NUM_CLASSES)(_outputs(fx), targets)
    reference = {k.removeprefix("loss."): v for k, v in fx.items() if k.startswith("loss.")}
    assert set(losses) == set(reference)
    for key, ref in reference.items():
        torch.testing.assert_close(losses[key].float(), ref, rtol=1e-5, atol=0, msg=key)
    meta = json.loads((REFERENCE / "fixtures.json").read_text())["models"][name]["train"]
    total = sum(v for k, v in losses.items() if k.startswith("loss_")).item()
    assert total == pytest.approx(meta["total_weighted_loss"], rel=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_matching_matches_reference(name: str) -> None:
    fx = _load(name)
    outputs = _outputs(fx)
    criterion = IFCCriterion(NUM_CLASSES)
    for targets in (_fixture_targets(fx), prepare_targets(_frame_instances(fx))):
        layers = {"final": outputs, "aux0": outputs["aux_outputs"][0], "aux1": outputs["aux_outputs"][1]}
        for layer, out in layers.items():
            for v, (src, tgt) in enumerate(criterion.matcher(out, targets)):
                assert torch.equal(src, fx[f"match.{layer}.video{v}.src"]), (layer, v)
                assert torch.equal(tgt, fx[f"match.{layer}.video{v}.tgt"]), (layer, v)


@pytest.mark.parametrize("name", MODELS)
def test_gradients_flow(name: str) -> None:
    fx = _load(name)
    outputs = _outputs(fx, requires_grad=True)
    criterion = IFCCriterion(NUM_CLASSES)
    losses = criterion(outputs, _fixture_targets(fx))
    for key in ("class_error", "cardinality_error", "cardinality_error_0", "cardinality_error_1"):
        assert not losses[key].requires_grad
    total = sum(v for k, v in losses.items() if k.startswith("loss_"))
    total.backward()
    for layer in [outputs, *outputs["aux_outputs"]]:
        for key in ("pred_logits", "pred_masks"):
            grad = layer[key].grad
            assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_hand_checked_case() -> None:
    # one class (0) + no-object (1); two queries; one gt instance covering a whole 4x4 frame
    logits = torch.tensor([[[0.0, 1.0], [math.log(3.0), 0.0]]])  # q0 -> no-object, q1 -> class 0 (p=0.75)
    pred_masks = torch.zeros(1, 2, 1, 2, 2)  # p = 0.5 everywhere, upsampled to 4x4
    target = {
        "labels": torch.tensor([0]),
        "ids": torch.tensor([[0]]),
        "masks": torch.ones(1, 1, 4, 4),
        "match_masks": torch.ones(1, 1, 4, 4),
    }
    criterion = IFCCriterion(1)
    outputs = {"pred_logits": logits, "pred_masks": pred_masks}
    ((src, tgt),) = criterion.matcher(outputs, [target])  # equal dice: the class probability decides
    assert src.tolist() == [1] and tgt.tolist() == [0]

    losses = criterion(outputs, [target])
    ce = (0.1 * math.log(1 + math.exp(-1.0)) + 1.0 * -math.log(0.75)) / 1.1
    dice = 1 - (2 * 8 + 1) / (8 + 16 + 1)  # sum p = 8, sum g = 16, sum p*g = 8
    focal = 0.25 * 0.5**2 * math.log(2.0)  # alpha_t * (1 - p_t)^gamma * BCE at p = 0.5, g = 1
    expected = {
        "loss_ce": ce,
        "loss_mask": 3 * focal,
        "loss_dice": 3 * dice,
        "class_error": 0.0,
        "cardinality_error": 0.0,
    }
    assert set(losses) == set(expected)
    for key, value in expected.items():
        assert losses[key].item() == pytest.approx(value, rel=1e-6, abs=1e-6), key


def test_video_without_instances() -> None:
    torch.manual_seed(0)
    outputs = {
        "pred_logits": torch.randn(2, 5, 4, requires_grad=True),
        "pred_masks": torch.randn(2, 5, 2, 3, 4),
    }
    empty = {
        "labels": torch.zeros(0, dtype=torch.int64),
        "ids": torch.zeros(0, 2, dtype=torch.int64),
        "masks": torch.zeros(0, 2, 6, 8),
        "match_masks": torch.zeros(0, 2, 6, 8),
    }
    one = {
        "labels": torch.tensor([2]),
        "ids": torch.tensor([[3, 3]]),
        "masks": torch.ones(1, 2, 6, 8),
        "match_masks": torch.ones(1, 2, 6, 8),
    }
    criterion = IFCCriterion(3)
    losses = criterion(outputs, [empty, empty])
    assert losses["loss_mask"].item() == 0 and losses["loss_dice"].item() == 0
    assert losses["class_error"].item() == 100
    losses = criterion(outputs, [empty, one])
    assert all(torch.isfinite(v) for v in losses.values())
    (losses["loss_ce"] + losses["loss_mask"] + losses["loss_dice"]).backward()
    assert outputs["pred_logits"].grad[0].abs().sum() > 0
