"""Imported by this folder's scripts when they are run by path (``python benchmarks/fps.py``): puts the
repository root on ``sys.path`` in place of this folder, so that ``benchmarks`` is imported as a package
(as with ``python -m benchmarks.fps`` and ``ifc-sdk bench``) and its modules shadow nothing by their bare
names (``memory``, ``models``, ``environment`` ...)."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [str(HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]
