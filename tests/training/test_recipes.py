"""Recipes hold the reference configs' values; the LR schedule; ImageNet backbone initialisation."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from ifc_sdk.errors import CheckpointError, ConfigError
from ifc_sdk.modeling.backbone import ResNet
from ifc_sdk.training.imagenet import convert_c2_names, load_imagenet_backbone, read_pkl
from ifc_sdk.training.recipes import RECIPES, get_recipe

# SOLVER / MODEL.IFC / INPUT values of projects/IFC/configs/{base,R101}_{coco,ytvis}.yaml + add_ifc_config.
SOLVER = dict(
    optimizer="adamw",
    base_lr=1e-4,
    weight_decay=1e-4,
    backbone_multiplier=0.1,
    clip_type="full_model",
    clip_value=0.01,
    clip_norm_type=2.0,
    warmup_factor=1.0,
    warmup_iters=10,
    warmup_method="linear",
    gamma=0.1,
)
MODEL = dict(
    num_enc_layers=3,
    num_dec_layers=3,
    num_memory_bus=8,
    num_queries=100,
    dropout=0.1,
    hidden_dim=256,
    num_heads=8,
    dim_feedforward=2048,
    freeze_at=2,
    class_weight=1.0,
    mask_weight=3.0,
    dice_weight=3.0,
    no_object_weight=0.1,
    deep_supervision=True,
    mask_stride=4,
    match_stride=4,
)
COCO = dict(
    dataset_format="coco",
    num_classes=80,
    num_frames=1,
    batch_size=32,
    crop=(384, 600),
    min_sizes=(480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800),
    min_size_sampling="choice",
    flip="horizontal",
    max_size=1333,
    init="imagenet",
    num_workers=8,
)
YTVIS = dict(
    dataset_format="ytvis",
    num_classes=40,
    num_frames=5,
    frame_range=20,
    batch_size=16,
    crop=None,
    min_sizes=(360, 480),
    min_size_sampling="choice_by_clip",
    flip="flip_by_clip",
    max_size=1333,
    max_iter=6000,
    steps=(4000,),
    init="checkpoint",
    test_size=360,
    test_window=5,
    test_stride=1,
    num_workers=8,
)
EXPECTED = {
    "r50_coco": dict(
        **SOLVER,
        **MODEL,
        **COCO,
        preset="r50",
        max_iter=1108800,
        steps=(739200,),
        imagenet_weights="detectron2://ImageNetPretrained/torchvision/R-50.pkl",
    ),
    "r101_coco": dict(
        **SOLVER,
        **MODEL,
        **COCO,
        preset="r101",
        max_iter=1848000,
        steps=(1232000,),
        imagenet_weights="detectron2://ImageNetPretrained/MSRA/R-101.pkl",
    ),
    "r50_ytvis": dict(**SOLVER, **MODEL, **YTVIS, preset="r50"),
    "r101_ytvis": dict(**SOLVER, **MODEL, **YTVIS, preset="r101"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recipes_hold_the_reference_values(name: str) -> None:
    recipe = get_recipe(name)
    got = recipe.to_dict()
    for key, value in EXPECTED[name].items():
        assert got[key] == value, f"{name}.{key}: {got[key]!r} != reference {value!r}"
    config = recipe.model_config(num_classes=recipe.num_classes)
    assert (config.num_enc_layers, config.num_dec_layers, config.num_memory_bus, config.num_queries) == (
        3,
        3,
        8,
        100,
    )
    assert config.depth == (101 if "r101" in name else 50)
    assert config.input_format == ("BGR" if "r101" in name else "RGB")


def test_demo_recipes_are_the_two_stages_scaled_down() -> None:
    coco, ytvis = get_recipe("demo_coco"), get_recipe("demo_ytvis")
    assert (coco.dataset_format, coco.num_frames, coco.init, coco.calibrate_bn) == (
        "coco",
        1,
        "scratch",
        True,
    )
    assert (ytvis.dataset_format, ytvis.num_frames, ytvis.init) == ("ytvis", 3, "checkpoint")
    for r in (coco, ytvis):
        assert r.preset == "demo" and r.num_classes == 5
        assert (r.clip_type, r.clip_value, r.optimizer) == ("full_model", 0.01, "adamw")
        # trained from scratch: the whole backbone learns at the full rate; aligned mask targets
        assert (r.freeze_at, r.backbone_multiplier, r.size_divisibility) == (0, 1.0, 32)
        assert (r.test_size, r.test_window, r.test_stride) == (160, 5, 1)
    crowded = get_recipe("demo_ytvis_crowded")  # the second phase of stage 2 (issue 16)
    assert (crowded.dataset_format, crowded.num_frames, crowded.init, crowded.test_size) == (
        "ytvis",
        3,
        "checkpoint",
        320,
    )
    assert crowded.model_config() == ytvis.model_config()  # continues the same model
    more = get_recipe("demo_ytvis_crowded_more")  # the later rounds: the same clips, at the base LR again
    assert (
        dataclasses.replace(more, name=crowded.name, max_iter=crowded.max_iter, steps=crowded.steps)
        == crowded
    )
    assert (more.max_iter, more.steps, more.base_lr) == (5000, (4000,), 1e-4)
    clips5 = get_recipe("demo_ytvis_crowded_clips5")  # the last phase: the same videos, 5 frames per clip
    assert dataclasses.replace(clips5, name=more.name, num_frames=3, max_iter=5000, steps=(4000,)) == more
    assert (clips5.num_frames, clips5.max_iter, clips5.steps) == (5, 3000, (2400,))
    range20 = get_recipe("demo_ytvis_crowded_range20")  # then frames from the reference's range of 20
    assert dataclasses.replace(range20, name=clips5.name, frame_range=10) == clips5
    assert range20.frame_range == get_recipe("r50_ytvis").frame_range == 20
    range30 = get_recipe("demo_ytvis_crowded_range30")  # then 30 frames either side, a shorter schedule
    assert (
        dataclasses.replace(range30, name=range20.name, frame_range=20, max_iter=3000, steps=(2400,))
        == range20
    )
    assert (range30.frame_range, range30.max_iter, range30.steps) == (30, 2000, (1600,))
    polish = get_recipe("demo_ytvis_crowded_polish")  # last: the same schedule at 0.3x the LR
    assert dataclasses.replace(polish, name=range30.name, base_lr=1e-4) == range30
    assert polish.base_lr == pytest.approx(3e-5)
    crop = get_recipe("demo_ytvis_crowded_crop")  # then the same with one crop box per clip
    assert dataclasses.replace(crop, name=polish.name, crop=None) == polish
    assert crop.crop == (128, 224)
    scales = get_recipe("demo_ytvis_crowded_scales")  # last: short sides centred on the test size
    assert dataclasses.replace(scales, name=crop.name, min_sizes=(224, 256, 288, 320)) == crop
    assert scales.min_sizes == (256, 288, 320, 352) and scales.test_size == 320
    assert set(RECIPES) == {
        "r50_coco",
        "r101_coco",
        "r50_ytvis",
        "r101_ytvis",
        "demo_coco",
        "demo_ytvis",
        "demo_ytvis_crowded",
        "demo_ytvis_crowded_more",
        "demo_ytvis_crowded_clips5",
        "demo_ytvis_crowded_range20",
        "demo_ytvis_crowded_range30",
        "demo_ytvis_crowded_polish",
        "demo_ytvis_crowded_crop",
        "demo_ytvis_crowded_scales",
    }
    for name in ("r50_coco", "r101_coco", "r50_ytvis", "r101_ytvis"):
        assert get_recipe(name).size_divisibility == 0 and not get_recipe(name).calibrate_bn


def test_lr_schedule_is_detectron2_warmup_multistep() -> None:
    r = get_recipe("r50_ytvis")
    assert [r.lr_factor(i) for i in (0, 5, 9, 10, 3999)] == [1.0] * 5  # WARMUP_FACTOR 1.0: no ramp
    assert r.lr_factor(4000) == pytest.approx(0.1) and r.lr_factor(5999) == pytest.approx(0.1)
    d2 = r.replace(warmup_factor=0.001)  # detectron2's default factor: linear ramp from 1/1000
    assert d2.lr_factor(0) == pytest.approx(0.001)
    assert d2.lr_factor(5) == pytest.approx(0.001 * 0.5 + 0.5)
    assert d2.lr_factor(10) == 1.0
    two = r.replace(steps=(100, 200), max_iter=150)
    assert [two.lr_factor(i) for i in (99, 100, 149)] == pytest.approx([1.0, 0.1, 0.1])


def test_recipe_validation() -> None:
    with pytest.raises(ConfigError, match="unknown recipe"):
        get_recipe("r50_ovis")
    with pytest.raises(ConfigError, match="flip"):
        get_recipe("r50_ytvis", flip="vertical")
    with pytest.raises(ConfigError, match="steps"):
        get_recipe("r50_ytvis", steps=(4000, 100))


@pytest.fixture(scope="module")
def torchvision_r50() -> torchvision.models.ResNet:
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model


def _torchvision_features(model: torchvision.models.ResNet, x: torch.Tensor) -> list[torch.Tensor]:
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    out = []
    for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
        x = layer(x)
        out.append(x)
    return out


@torch.no_grad()
def test_torchvision_weights_give_torchvision_features(torchvision_r50: torchvision.models.ResNet) -> None:
    backbone = ResNet(50)
    unused = load_imagenet_backbone(backbone, torchvision_r50.state_dict())
    assert unused == []  # fc.* and num_batches_tracked are dropped by the conversion
    x = torch.randn(1, 3, 64, 96)
    ours = backbone(x)
    for name, ref in zip(
        ("res2", "res3", "res4", "res5"), _torchvision_features(torchvision_r50, x), strict=True
    ):
        torch.testing.assert_close(ours[name], ref, rtol=1e-4, atol=1e-4)


def _c2_name(d2: str) -> str:
    """detectron2 name -> the MSRA/Caffe2 blob name (the inverse of convert_c2_names)."""
    name = (
        d2.replace("norm.weight", "bn_s").replace("norm.bias", "bn_b").replace("norm.running_mean", "bn_rm")
    )
    name = name.replace("norm.running_var", "bn_riv")
    name = name.replace("stem.conv1.bn_", "res_conv1_bn_").replace("stem.conv1.weight", "conv1_w")
    for old, new in (
        (".shortcut.", ".branch1."),
        (".conv1.", ".branch2a."),
        (".conv2.", ".branch2b."),
        (".conv3.", ".branch2c."),
    ):
        name = name.replace(old, new)
    name = name.replace(".weight", "_w").replace(".", "_")
    return name


def test_c2_names_convert_like_detectron2() -> None:
    names = convert_c2_names(
        [
            "conv1_w",
            "res_conv1_bn_s",
            "res_conv1_bn_b",
            "res2_0_branch2a_w",
            "res2_0_branch2a_bn_s",
            "res2_0_branch1_w",
            "res5_2_branch2c_bn_b",
            "fc1000_w",
            "res4.5.conv2.weight",
        ]
    )
    assert names == {
        "conv1_w": "stem.conv1.weight",
        "res_conv1_bn_s": "stem.conv1.norm.weight",
        "res_conv1_bn_b": "stem.conv1.norm.bias",
        "res2_0_branch2a_w": "res2.0.conv1.weight",
        "res2_0_branch2a_bn_s": "res2.0.conv1.norm.weight",
        "res2_0_branch1_w": "res2.0.shortcut.weight",
        "res5_2_branch2c_bn_b": "res5.2.conv3.norm.bias",
        "fc1000_w": "fc1000.weight",
        "res4.5.conv2.weight": "res4.5.conv2.weight",
    }


@torch.no_grad()
def test_detectron2_pkl_files_load(tmp_path: Path, torchvision_r50: torchvision.models.ResNet) -> None:
    reference = ResNet(50)
    load_imagenet_backbone(reference, torchvision_r50.state_dict())
    state = {k: v.numpy() for k, v in reference.state_dict().items()}
    # MSRA layout: Caffe2 names, affine-only batch norms (no statistics), a classifier, momentum blobs.
    msra = {_c2_name(k): v for k, v in state.items() if not k.endswith(("running_mean", "running_var"))}
    msra.update({"fc1000_w": np.zeros((10, 2048), np.float32), "res2_0_branch2a_w_momentum": np.zeros(1)})
    with open(tmp_path / "R-50-msra.pkl", "wb") as f:
        pickle.dump({"blobs": msra}, f, protocol=2)
    # torchvision/R-50.pkl layout: detectron2 names already, {"model": ..., "__author__": ...}.
    with open(tmp_path / "R-50.pkl", "wb") as f:
        pickle.dump({"model": state, "__author__": "torchvision", "matching_heuristics": True}, f)
    assert len(read_pkl(tmp_path / "R-50-msra.pkl")) == len(msra) - 1

    d2 = ResNet(50)
    load_imagenet_backbone(d2, tmp_path / "R-50.pkl")
    for k, v in reference.state_dict().items():
        assert torch.equal(d2.state_dict()[k], v), k
    c2 = ResNet(50)
    assert load_imagenet_backbone(c2, tmp_path / "R-50-msra.pkl") == ["fc1000.weight"]
    for k, v in c2.state_dict().items():
        if k.endswith("running_mean"):
            assert torch.equal(v, torch.zeros_like(v)), k
        elif k.endswith("running_var"):
            assert torch.equal(v, torch.ones_like(v)), k
        else:
            assert torch.equal(v, reference.state_dict()[k]), k


def test_unsafe_or_unfitting_weights_are_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump({"model": {"conv1_w": Evil()}}, f)
    with pytest.raises(CheckpointError, match="refused"):
        read_pkl(tmp_path / "evil.pkl")
    with open(tmp_path / "small.pkl", "wb") as f:
        pickle.dump({"model": {"conv1_w": np.zeros((8, 3, 7, 7), np.float32)}}, f)
    with pytest.raises(CheckpointError, match="missing"):
        load_imagenet_backbone(ResNet(50), tmp_path / "small.pkl")
