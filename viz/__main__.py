"""Command line: draw a saved graph. ``python -m viz GRAPH.json --view folded -o out.svg``.

Flow: a JSON graph saved by ``tg.Graph.save`` (or ``viz.save_json``) -> **viz.__main__** ->
viz.unfolded / viz.folded / viz.graphical_model -> viz.render; ``--diagnose`` prints the
gradient report, ``--chart`` writes the gradient charts.
"""
from __future__ import annotations

import argparse
import sys

from .diagnose import diagnose
from .folded import folded
from .graphical_model import graphical_model
from .render import GraphvizNotFound, render
from .schema import SchemaError, load
from .unfolded import DEFAULT_MAX_STEPS, unfolded


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m viz",
        description="Draw a tinygraph graph (node-link JSON) folded or unfolded.")
    p.add_argument("graph", help="graph JSON saved with tg.Graph.save or viz.save_json")
    p.add_argument("--view", choices=("unfolded", "folded", "graphical"), default="unfolded")
    p.add_argument("--level", choices=("variable", "op"), default="variable")
    p.add_argument("--grad", action="store_true", help="overlay gradient norms")
    p.add_argument("--max-steps", type=int, default=DEFAULT_MAX_STEPS,
                   help=f"unfolded: steps shown before eliding (default {DEFAULT_MAX_STEPS}; "
                        f"0 shows all)")
    p.add_argument("--params", choices=("once", "per_step"), default="once",
                   help="unfolded, op level: each parameter once, or a copy per step")
    p.add_argument("-o", "--output", help=".svg, .png, .pdf or .dot (default: DOT on stdout)")
    p.add_argument("--diagnose", action="store_true", help="print the gradient-flow report")
    p.add_argument("--chart", metavar="PATH", help="write the gradient charts (matplotlib)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        G = load(args.graph)
        if args.view == "unfolded":
            fig = unfolded(G, level=args.level, max_steps=args.max_steps or None,
                           grads=args.grad, params=args.params)
        elif args.view == "folded":
            fig = folded(G, level=args.level, grads=args.grad)
        else:
            fig = graphical_model(G)
        if args.output:
            print(render(fig, args.output))
        elif not (args.diagnose or args.chart):
            sys.stdout.write(fig.source)
        if args.diagnose:
            print(diagnose(G))
        if args.chart:
            from .charts import gradient_chart
            gradient_chart(G, args.chart)   # a Figure, saved there
            print(args.chart)
    except (GraphvizNotFound, SchemaError, FileNotFoundError, ValueError, ImportError) as exc:
        print(f"python -m viz: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
