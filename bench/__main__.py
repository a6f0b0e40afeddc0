"""`python -m bench`: every benchmark of the project, one after the other, in one process."""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

for mod in sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent))
                  if m.name.startswith("bench_")):
    importlib.import_module(f"bench.{mod}").main()
