"""`python -m bench`: every benchmark of the project, one after the other, in one process."""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

_HERE = str(Path(__file__).parent)
for name in sorted(m.name for m in pkgutil.iter_modules([_HERE]) if m.name.startswith("bench_")):
    importlib.import_module(f"bench.{name}").main()
