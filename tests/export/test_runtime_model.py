"""`RuntimeClipModel` itself: host-side normalisation, inputs, the protocol, loading errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny import tiny_model

from ifc_sdk.errors import ConfigError
from ifc_sdk.export import RuntimeClipModel, load_exported
from ifc_sdk.export.graphs import STATE_NAMES
from ifc_sdk.export.metadata import MANIFEST, ExportInfo
from ifc_sdk.inference.clip_model import ClipModel

GRAPHS = {"frame": "frame.onnx", "window": "window.onnx"}


def runtime(model, seen: list) -> RuntimeClipModel:
    """A runtime model whose 'graphs' record what they are given."""

    def frame_graph(images):
        seen.append(images)
        return [images[:, :1, 0, :2].clone() for _ in STATE_NAMES]

    def window_graph(*states):
        seen.append(states)
        return [torch.zeros(3, 4), torch.zeros(3, states[0].shape[0], 2, 2)]

    info = ExportInfo("onnx", "fp32", GRAPHS, [*GRAPHS.values(), MANIFEST], model.config)
    return RuntimeClipModel(info, frame_graph, window_graph, Path("x"))


@pytest.mark.parametrize("input_format", ["RGB", "BGR"])
def test_normalises_on_the_host_exactly_as_the_model(input_format):
    overrides = {"input_format": input_format}
    if input_format == "BGR":
        overrides.update(pixel_mean=(103.53, 116.28, 123.675), pixel_std=(1.0, 1.0, 1.0))
    model = tiny_model(**overrides)
    seen: list = []
    rt = runtime(model, seen)
    images = torch.randint(
        0, 256, (2, 3, 5, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    states = rt.frame_states(images)
    assert torch.equal(seen[0], model.normalize(images))  # bit for bit
    assert list(states) == list(STATE_NAMES)
    logits, masks = rt.window_heads(states, 2)
    assert masks.shape == (3, 2, 2, 2) and len(seen[1]) == len(STATE_NAMES)


def test_is_a_clip_model_on_the_cpu():
    rt = runtime(tiny_model(), [])
    assert isinstance(rt, ClipModel) and rt.device == torch.device("cpu")
    rt.prepare()  # nothing to do, and idempotent
    assert "onnx, fp32" in repr(rt)


def test_rejects_frames_that_are_not_uint8_nchw():
    rt = runtime(tiny_model(), [])
    with pytest.raises(ConfigError, match="frames must be uint8"):
        rt.frame_states(torch.zeros(2, 3, 5, 7))
    with pytest.raises(ConfigError, match="window of 3 frames, but states of 2"):
        rt.window_heads({name: torch.zeros(2, 1) for name in STATE_NAMES}, 3)


def test_loading_names_a_missing_graph_and_a_missing_gpu_provider(tmp_path):
    info = ExportInfo("onnx", "fp32", GRAPHS, [*GRAPHS.values(), MANIFEST], tiny_model().config)
    (tmp_path / MANIFEST).write_text(info.to_json())
    with pytest.raises(ConfigError, match="frame.onnx: the frame graph named in .* is missing"):
        load_exported(tmp_path)
    for name in GRAPHS.values():
        (tmp_path / name).write_bytes(b"")
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    with pytest.raises(ConfigError, match="CUDA provider, which this onnxruntime lacks"):
        load_exported(tmp_path, device="cuda")
    with pytest.raises(ConfigError, match="onnxruntime cannot load this graph"):
        load_exported(tmp_path)
