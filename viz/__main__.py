"""Command line: draw a saved graph. ``python -m viz GRAPH.json --view folded -o out.svg``.

Flow: a JSON graph saved by ``tg.Graph.save`` (or ``viz.save_json``) -> **viz.__main__** ->
viz.render (which draws with viz.unfolded / viz.folded / viz.graphical_model); ``--diagnose``
prints the gradient report, ``--chart`` writes the gradient charts. Installed as the console
script ``tinygraph-viz``.

Every failure is one line on stderr and exit status 1 (``--debug`` shows the traceback); a
closed pipe (``python -m viz g.json | head``) ends quietly.
"""
from __future__ import annotations

import argparse
import os
import sys
from importlib import metadata

from .diagnose import diagnose
from .figure import GraphvizError, GraphvizNotFound
from .render import draw, render
from .schema import SCHEMA_VERSION, SchemaError, describe, load
from .unfolded import DEFAULT_MAX_STEPS

#: what a user can fix; anything else is a bug in viz and says so
USER_ERRORS = (GraphvizNotFound, GraphvizError, SchemaError, OSError, ValueError, TypeError,
               ImportError)


def version() -> str:
    """``tinygraph <version> (graph schema <n>)``; the version of the installed distribution."""
    try:
        v = metadata.version("tinygraph")
    except metadata.PackageNotFoundError:
        v = "unknown (not installed: running from a source tree)"
    return f"tinygraph {v} (graph schema {SCHEMA_VERSION})"


def build_parser(prog: str = "python -m viz") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Draw a tinygraph graph (node-link JSON) folded or unfolded.")
    p.add_argument("graph", nargs="?",
                   help="graph JSON saved with tg.Graph.save or viz.save_json")
    p.add_argument("--version", action="version", version=version())
    p.add_argument("--schema", action="store_true",
                   help="print the graph attributes viz reads, with their types, and exit")
    p.add_argument("--view", choices=("unfolded", "folded", "graphical"), default="unfolded")
    p.add_argument("--level", choices=("variable", "op"), default="variable")
    p.add_argument("--grad", action="store_true", help="overlay gradient norms")
    p.add_argument("--max-steps", type=int, default=DEFAULT_MAX_STEPS,
                   help=f"unfolded: steps shown before eliding (default {DEFAULT_MAX_STEPS}; "
                        f"0 shows all)")
    p.add_argument("--params", choices=("once", "per_step"), default="once",
                   help="unfolded, op level: each parameter once, or a copy per step")
    p.add_argument("-o", "--output",
                   help=".svg, .png, .pdf, .dot or .html (interactive page); "
                        "default: DOT on stdout")
    p.add_argument("--keep-dot", action="store_true",
                   help="also write the DOT text beside the output")
    p.add_argument("--diagnose", action="store_true", help="print the gradient-flow report")
    p.add_argument("--chart", metavar="PATH", help="write the gradient charts (matplotlib)")
    p.add_argument("--debug", action="store_true", help="show the Python traceback on errors")
    return p


def run(args: argparse.Namespace) -> None:
    """Do what the parsed command line asks (errors propagate to :func:`main`)."""
    if args.schema:
        print(describe())
        return
    G = load(args.graph)
    options: dict = {}
    if args.view == "unfolded":
        options = dict(level=args.level, max_steps=args.max_steps or None, grads=args.grad,
                       params=args.params)
    elif args.view == "folded":
        options = dict(level=args.level, grads=args.grad)
    fig = draw(G, args.view, **options)
    if args.output:
        print(render(fig, args.output, keep_dot=args.keep_dot))
    elif not (args.diagnose or args.chart):
        sys.stdout.write(fig.source)
    if args.diagnose:
        print(diagnose(G))
    if args.chart:
        from .charts import gradient_chart
        gradient_chart(G, args.chart)   # a Figure, saved there
        print(args.chart)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m viz`` and ``tinygraph-viz``; returns the exit status."""
    argv0 = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    prog = argv0 if argv0.startswith("tinygraph-viz") else "python -m viz"
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.graph is None and not args.schema:
        parser.error("the graph JSON file is required")
    try:
        run(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader (head, less) went away: the rest is unwanted, not an error; point stdout
        # at /dev/null so the interpreter's final flush does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except USER_ERRORS as exc:
        if args.debug:
            raise
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug in viz: still one line, and how to see more
        if args.debug:
            raise
        print(f"{prog}: internal error: {type(exc).__name__}: {one_line(exc)} (rerun with "
              f"--debug for the traceback and report it)", file=sys.stderr)
        return 1
    return 0


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (OSError: the file and the reason)."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        text = f"{exc.strerror}: {exc.filename!r}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
