"""What an exported folder holds, as ``ifc_export.json`` beside the graphs.

The manifest makes a folder self-describing: which format and precision, which file is which graph, the model's
`IFCConfig` (categories, number of classes and queries ...) and the input convention (uint8 RGB frames resized
to network size, normalised on the host with the channel order and pixel statistics given here). ONNX graphs
carry the same JSON in their ``metadata_props`` (key ``ifc_sdk``), so a lone ``.onnx`` file still says what it
is.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ifc_sdk.errors import ConfigError
from ifc_sdk.modeling.config import IFCConfig

MANIFEST = "ifc_export.json"
# Attribute a model loaded by manifest name (`ifc_sdk.load_model`) or from an export folder carries: its
# recommended ``{"window", "stride", "size"}``, which an export records and hands on.
RECOMMENDED_ATTRIBUTE = "recommended_inference"
FORMAT_VERSION = 1
FORMATS = ("onnx", "openvino", "torchscript", "exported-program")
PRECISIONS = ("fp32", "int8")
INPUT_CONVENTION = (
    "frame graph input 'images': float32 (N, 3, H, W), uint8 RGB frames resized so that the short side is the "
    "inference size, flipped to BGR when input_format is 'BGR', then (x - pixel_mean) / pixel_std per channel"
)


@dataclass
class ExportInfo:
    """The manifest of one exported model (see the module docstring).

    Attributes:
        format: one of `FORMATS`.
        precision: "fp32" or "int8".
        graphs: ``{"frame": file, "window": file}`` relative to the folder.
        files: every file the export wrote (graphs, weights, manifest), so an overwrite removes exactly these.
        config: the architecture, categories and input convention of the model.
        quantization: how the int8 graphs were calibrated (None for fp32).
        check: largest differences from eager measured right after exporting (see `ifc_sdk.export.check`).
        versions: library versions the graphs were written with.
        inference: the exported model's recommended ``{"window", "stride", "size"}`` (when it had them: a
            model `ifc_sdk.load_model` loaded by manifest name), used as defaults when the folder is run.
    """

    format: str
    precision: str
    graphs: dict[str, str]
    files: list[str]
    config: IFCConfig
    quantization: dict | None = None
    check: dict | None = None
    versions: dict[str, str] = field(default_factory=dict)
    inference: dict[str, int] | None = None

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"unknown export format {self.format!r}; choose one of {', '.join(FORMATS)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if set(self.graphs) != {"frame", "window"}:
            raise ConfigError(f"an export has a 'frame' and a 'window' graph, got {sorted(self.graphs)}")

    def to_dict(self) -> dict:
        config = json.loads(json.dumps(self.config.to_dict()))  # JSON types (lists, not tuples), as read back
        return {
            "format_version": FORMAT_VERSION,
            "format": self.format,
            "precision": self.precision,
            "graphs": dict(self.graphs),
            "files": list(self.files),
            "config": config,
            "input": {
                "convention": INPUT_CONVENTION,
                "input_format": config["input_format"],
                "pixel_mean": list(config["pixel_mean"]),
                "pixel_std": list(config["pixel_std"]),
            },
            "quantization": self.quantization,
            "check": self.check,
            "versions": dict(self.versions),
            "inference": self.inference,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict, source: str | os.PathLike = MANIFEST) -> ExportInfo:
        """Parse a manifest; anything missing or of another format version is a `ConfigError` naming
        ``source``."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ConfigError(
                f"{source}: export format version {version!r}; this ifc_sdk reads version {FORMAT_VERSION}"
            )
        try:
            return cls(
                format=data["format"],
                precision=data["precision"],
                graphs=dict(data["graphs"]),
                files=list(data["files"]),
                config=IFCConfig.from_dict(data["config"]),
                quantization=data.get("quantization"),
                check=data.get("check"),
                versions=dict(data.get("versions") or {}),
                inference=_inference(data.get("inference"), source),
            )
        except KeyError as exc:
            raise ConfigError(f"{source}: the export manifest has no {exc.args[0]!r} entry") from exc
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from exc

    @classmethod
    def read(cls, folder: str | os.PathLike) -> ExportInfo:
        """The manifest of exported folder ``folder``."""
        path = Path(folder) / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"{folder}: not an exported model (no {MANIFEST})") from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the export manifest: {exc}") from exc
        return cls.from_dict(data, path)


def _inference(value, source: str | os.PathLike) -> dict[str, int] | None:
    """The manifest's ``inference`` entry: None or positive integers for some of window, stride, size."""
    if value is None:
        return None
    keys = ("window", "stride", "size")
    if (
        not isinstance(value, dict)
        or set(value) - set(keys)
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value.values())
    ):
        raise ConfigError(f"{source}: 'inference' must map some of {', '.join(keys)} to positive integers")
    return dict(value)


def is_export_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder written by `ifc_sdk.export` (it holds an ``ifc_export.json``)."""
    return (Path(path) / MANIFEST).is_file()
