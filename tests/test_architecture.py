"""Dependencies inside ifc_sdk point one way: model <- predictor <- (io, API) <- CLI.

`LAYERS` is the one place the direction is written down: each part of the package (a subpackage or a top-level
module) names the parts directly below it; a part may import its own modules and everything below it,
transitively. The tests read every module's imports with `ast`, lazy imports inside functions included, and
fail on an edge that points up or sideways, naming the file and line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ifc_sdk"
ROOT = "ifc_sdk"  # ifc_sdk/__init__.py: the public facade
ATOMIC = "io.atomic"  # safe writes (errors only): a leaf under every writer, so a part of its own

# part -> the parts directly below it.
LAYERS: dict[str, set[str]] = {
    "errors": set(),
    "results": {"errors", ATOMIC},  # VideoResult, Track, RLE helpers: data, saved (JSON, overlay) atomically
    "modeling": {"errors"},  # the network, nothing about videos
    ATOMIC: {"errors"},
    "hub": {"errors", ATOMIC},  # transport and cache, nothing about models
    "checkpoint": {"modeling", ATOMIC},
    "weights": {"checkpoint", "hub"},
    "inference": {"modeling", "results"},  # windowing, tracking, the clip-model protocol
    "io": {"inference", ATOMIC},  # decoding (at network size), exports, overlays
    "data": {"inference"},  # datasets and training transforms (the test-time resize rule)
    "export": {"io"},  # exported graphs and the runtimes behind the clip-model protocol
    "api": {"io", "weights", "export"},
    "evaluation": {"api", "data"},
    "training": {"evaluation", "checkpoint"},
    "cli": {"training", ROOT},
    ROOT: {"api"},
}


def below(part: str) -> set[str]:
    """Every part ``part`` may import: its own and everything under it in `LAYERS`."""
    seen, todo = {part}, [part]
    while todo:
        for lower in LAYERS[todo.pop()]:
            if lower not in seen:
                seen.add(lower)
                todo.append(lower)
    return seen


def modules() -> dict[str, Path]:
    """``ifc_sdk.x.y`` -> its file, for every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def part_of(module: str) -> str:
    """``ifc_sdk.inference.predictor`` -> ``inference``; ``ifc_sdk`` -> `ROOT`."""
    if module == f"{ROOT}.{ATOMIC}":
        return ATOMIC
    return module.split(".")[1] if "." in module else ROOT


def imports(module: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """``(imported ifc_sdk module, line)`` for every import statement of ``path``, at any depth."""

    def resolve(name: str) -> str:  # `ifc_sdk.x.Name` -> `ifc_sdk.x`
        while name not in known and "." in name:
            name = name.rsplit(".", 1)[0]
        return name

    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == ROOT:
                    yield resolve(alias.name), node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x / from ..x import y
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != ROOT:
                continue
            for alias in node.names:  # `from ifc_sdk import hub` imports the module ifc_sdk.hub
                yield resolve(f"{base}.{alias.name}"), node.lineno


def import_graph() -> dict[str, list[tuple[str, int]]]:
    known = modules()
    return {m: list(imports(m, path, known)) for m, path in known.items()}


def test_layers_are_a_direction():
    """`LAYERS` itself has no cycle, so the parts can be ordered bottom to top."""
    for part in LAYERS:
        for lower in LAYERS[part]:
            assert part not in below(lower), f"{part} and {lower} are each below the other"


def test_every_part_has_a_layer():
    known = {part_of(m) for m in modules()}
    missing = sorted(known - set(LAYERS))
    assert not missing, f"add {missing} to LAYERS in {Path(__file__).name} (which parts each may import)"


def test_imports_point_down():
    known = modules()
    bad = []
    for module, edges in import_graph().items():
        source = part_of(module)
        if source not in LAYERS:
            continue  # reported by test_every_part_has_a_layer
        for target, line in edges:
            if part_of(target) not in below(source):
                path = known[module].relative_to(PACKAGE.parent)
                bad.append(f"{path}:{line}: {source} imports {target} ({part_of(target)} is not below it)")
    assert not bad, "imports against the direction in LAYERS:\n" + "\n".join(bad)


def test_no_import_cycles_between_modules():
    """No cycle of modules, counting lazy imports (which hide a cycle from Python but not from a reader)."""
    graph = {m: sorted({t for t, _ in edges if t != m}) for m, edges in import_graph().items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in graph.get(module, []):
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target) :] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize(
    ("source", "target", "allowed"),
    [
        ("modeling", "inference", False),
        ("modeling", "io", False),
        ("inference", "api", False),
        ("inference", "cli", False),
        ("inference", "io", False),
        ("api", "cli", False),
        ("modeling", "export", False),
        ("inference", "export", False),
        ("export", "api", False),
        (ROOT, "cli", False),
        ("inference", "modeling", True),
        ("io", "inference", True),
        ("cli", "api", True),
        ("api", "export", True),
    ],
)
def test_layers_encode_the_documented_rules(source, target, allowed):
    assert (target in below(source)) is allowed


def test_the_check_finds_an_upward_import(tmp_path):
    """The reader sees lazy and relative imports: a model module importing the predictor inside a method."""
    path = tmp_path / "ifc.py"
    path.write_text(
        "import torch\n\nclass IFC:\n    def run(self):\n"
        "        from ..inference.predictor import segment_frames\n"
        "        from ifc_sdk import api\n"
    )
    known = {"ifc_sdk.modeling.ifc": path, "ifc_sdk.inference.predictor": path, "ifc_sdk.api": path}
    assert list(imports("ifc_sdk.modeling.ifc", path, known)) == [
        ("ifc_sdk.inference.predictor", 5),
        ("ifc_sdk.api", 6),
    ]
