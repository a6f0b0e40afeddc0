"""`python -m bench [quick]`: every benchmark of the project, one after the other, in one process.

`quick` runs the short rows only (per-op cost, the tiny and medium sizes, the min-char-rnn port)
and skips the memory rows, the task table and the viz benchmarks.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

_HERE = str(Path(__file__).parent)
quick = "quick" in sys.argv[1:]
for name in sorted(m.name for m in pkgutil.iter_modules([_HERE]) if m.name.startswith("bench_")):
    if quick and name == "bench_viz":
        continue
    main = importlib.import_module(f"bench.{name}").main
    main(quick=quick) if name != "bench_viz" else main()
