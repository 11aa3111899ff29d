"""``ifc-sdk bench``: the FPS benchmark (``benchmarks/fps.py``) and the long-video benchmark
(``benchmarks/long_video.py``) of a repository checkout.

The benchmark code is the ``benchmarks`` package of the repository (next to its reference-style baseline and
its results), not part of the installed package; this command finds that folder beside the package (an
editable install of a checkout) or at ``$IFC_SDK_BENCHMARKS``, imports it and runs the script's ``main`` with
the remaining arguments::

    ifc-sdk bench --rows r50_t5,r50_t36 --repeats 3      # = python benchmarks/fps.py ...
    ifc-sdk bench long-video --lengths 36,360,3600       # = python benchmarks/long_video.py ...
    ifc-sdk bench --help                                 # the script's own options
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from ifc_sdk.errors import ConfigError

SCRIPTS = {"fps": "fps", "long-video": "long_video"}  # command word -> module of the benchmarks package
PACKAGE = "benchmarks"


def benchmarks_dir() -> Path:
    """The ``benchmarks/`` folder of the checkout this package was installed from (or $IFC_SDK_BENCHMARKS)."""
    candidates = []
    if os.environ.get("IFC_SDK_BENCHMARKS"):
        candidates.append(Path(os.environ["IFC_SDK_BENCHMARKS"]))
    candidates.append(Path(__file__).resolve().parents[2] / "benchmarks")
    for path in candidates:
        if (path / "fps.py").is_file() and (path / "__init__.py").is_file():
            return path
    raise ConfigError(
        "the benchmarks need a repository checkout: expected the benchmarks package (benchmarks/__init__.py, "
        f"benchmarks/fps.py) beside the ifc_sdk package (looked in {', '.join(str(c) for c in candidates)}); "
        "clone the repository and `pip install -e .`, or set IFC_SDK_BENCHMARKS to its benchmarks/ folder"
    )


def _package(folder: Path) -> ModuleType:
    """Import ``folder`` as the ``benchmarks`` package (whatever the folder is called)."""
    loaded = sys.modules.get(PACKAGE)
    if loaded is not None:
        where = [Path(p).resolve() for p in getattr(loaded, "__path__", [])]
        if folder.resolve() in where:
            return loaded
        raise ConfigError(
            f"a different `{PACKAGE}` package is already imported (from {', '.join(map(str, where))}), "
            f"not {folder}"
        )
    spec = importlib.util.spec_from_file_location(
        PACKAGE, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = module
    spec.loader.exec_module(module)
    return module


def load_script(name: str) -> ModuleType:
    """The module of ``benchmarks`` that the command word ``name`` runs (``fps`` or ``long-video``)."""
    _package(benchmarks_dir())
    return importlib.import_module(f"{PACKAGE}.{SCRIPTS[name]}")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench`` command (its options are the benchmark script's)."""
    parser = subparsers.add_parser(
        "bench",
        help="FPS benchmark against the reference-style baseline (repository checkout)",
        description="Run benchmarks/fps.py (or, with `long-video` first, benchmarks/long_video.py) of the "
        "repository checkout; every argument is passed on (see `ifc-sdk bench --help`).",
        add_help=False,
        prefix_chars="+",  # every "-..." argument belongs to the script, "--help" included
    )
    parser.add_argument("script_args", nargs=argparse.REMAINDER)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    argv = list(args.script_args)
    name, prog = "fps", "ifc-sdk bench"
    if argv and argv[0] in SCRIPTS:
        name = argv.pop(0)
        prog = f"ifc-sdk bench {name}"
    return int(load_script(name).main(argv, prog=prog) or 0)
