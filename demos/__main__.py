"""``python -m demos [--out DIR] [--quick]``: build the gallery and say where it is.

Flow: command line -> demos.gallery.build -> files in DIR (default ``out/``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from viz import GraphvizNotFound


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m demos",
                                description="Train ch. 10's architectures and draw them.")
    p.add_argument("--out", default="out", help="output folder (default: out)")
    p.add_argument("--quick", action="store_true",
                   help="train for a tenth of the steps (figures only, scores not meaningful)")
    args = p.parse_args(argv)
    from .gallery import build
    start = time.perf_counter()
    print(f"building the gallery in {args.out}/ ...")
    try:
        index = build(args.out, quick=args.quick)
    except GraphvizNotFound as exc:
        print(f"python -m demos: error: {exc}", file=sys.stderr)
        return 1
    print(f"done in {time.perf_counter() - start:.0f} s: open {os.path.abspath(index)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
