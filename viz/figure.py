"""The figure every view returns, and how its DOT text becomes SVG / PNG through Graphviz.

Flow: viz.unfolded / viz.folded / viz.graphical_model build a **viz.figure.Figure** -> viz.render
(files), notebooks (``_repr_svg_``), viz.html (the interactive page).

A :class:`Figure` is a ``graphviz.Digraph`` whose node ids are always written as plain quoted
strings (never as HTML strings or ``node:port`` pairs, so an id cannot add DOT statements), that
shows itself in Jupyter through the project's own ``dot`` runner (so a missing Graphviz gives the
install help, not graphviz's bare ``ExecutableNotFound``), and that remembers the graph and view
it was drawn from (for the interactive page). :func:`dot_id` is the one mapping from a graph's
node ids to DOT ids: ``1`` and ``"n1"`` stay two nodes.
"""
from __future__ import annotations

import functools
import html
import inspect
import shutil
import subprocess
from typing import Any, Callable, TypeVar

import graphviz
from graphviz import quoting

PNG_DPI = 144  # readable PNGs: Graphviz's default 96 dpi makes small text
INSTALL_HELP = ("Install Graphviz: `apt-get install graphviz` (Debian/Ubuntu), "
                "`brew install graphviz` (macOS) or `conda install graphviz`; the Python package "
                "alone is not enough.")


class GraphvizNotFound(RuntimeError):
    """Graphviz's ``dot`` executable is not installed (or not on PATH)."""


class GraphvizError(RuntimeError):
    """Graphviz's ``dot`` ran and failed on a figure's DOT text."""


def find_dot() -> str:
    """Path of Graphviz's ``dot``; raises :class:`GraphvizNotFound` with install instructions."""
    path = shutil.which("dot")
    if path is None:
        raise GraphvizNotFound(f"Graphviz's `dot` program was not found on PATH. {INSTALL_HELP}")
    return path


def pipe(fig: graphviz.Digraph, fmt: str = "svg") -> bytes:
    """Run ``dot -T<fmt>`` on the figure's DOT text and return the output bytes.

    Raises
    ------
    GraphvizNotFound
        When ``dot`` is not installed.
    GraphvizError
        When ``dot`` rejects the text (its first error line is in the message).
    """
    dot = find_dot()
    args = [dot, f"-T{fmt}"] + ([f"-Gdpi={PNG_DPI}"] if fmt == "png" else [])
    # a figure built by hand may still hold a lone surrogate: show it escaped, never crash
    text = fig.source.encode("utf-8", "backslashreplace")
    proc = subprocess.run(args, input=text, capture_output=True, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().replace("\n", " ")
        raise GraphvizError(f"Graphviz `dot -T{fmt}` failed on figure {fig.name!r} "
                            f"(exit {proc.returncode}): {err[:300]}")
    return proc.stdout


def _plain_id(identifier: str) -> str:
    """A DOT id as one quoted string: no HTML string, no port, backslashes kept literal."""
    return quoting.quote(quoting.escape(str(identifier)))


class Figure(graphviz.Digraph):
    """A ``graphviz.Digraph`` that quotes every id and shows itself as SVG in Jupyter.

    ``drawn_from`` is ``(graph, view, options)`` when a view made the figure (see
    :func:`drawing`), else None.
    """

    _quote = staticmethod(_plain_id)
    _quote_edge = staticmethod(_plain_id)
    drawn_from: tuple[Any, str, dict] | None = None

    def _repr_svg_(self) -> str | None:
        """The figure as SVG text, or None (IPython then shows the other formats)."""
        try:
            return pipe(self, "svg").decode("utf-8")
        except (GraphvizNotFound, GraphvizError):
            return None

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None,
                          **kwargs: Any) -> dict[str, str]:
        # graphviz.Digraph defines this hook too and IPython prefers it to _repr_svg_: without
        # this override its own renderer ran and a missing `dot` showed its bare traceback
        try:
            return {"image/svg+xml": pipe(self, "svg").decode("utf-8")}
        except (GraphvizNotFound, GraphvizError) as exc:
            return {"text/plain": str(exc),
                    "text/html": f"<pre style='color:#a00'>{html.escape(str(exc))}</pre>"}


F = TypeVar("F", bound=Callable[..., Figure])


def drawing(view: str) -> Callable[[F], F]:
    """Decorator for a view function: the figure it returns remembers what it was drawn from.

    The interactive page (:mod:`viz.html`) uses it to show each node's recorded attributes.
    """
    def wrap(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def drawn(*args: Any, **kwargs: Any) -> Figure:
            fig = fn(*args, **kwargs)
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            options = dict(bound.arguments)
            fig.drawn_from = (options.pop(next(iter(signature.parameters))), view, options)
            return fig
        return drawn  # type: ignore[return-value]
    return wrap


def dot_id(n: Any) -> str:
    """The DOT id of graph node ``n``: ``n<k>`` for an int, an escaped ``s...`` for the rest.

    Injective (an int 1 and a string ``"n1"`` get different ids), deterministic, and plain
    ASCII letters, digits and ``_``, so an id never needs quoting nor shows control characters.

    Examples
    --------
    >>> dot_id(1), dot_id("n1"), dot_id("a b")
    ('n1', 'sn1', 'sa_20_b')
    """
    if isinstance(n, int) and not isinstance(n, bool):
        return f"n{n}" if n >= 0 else f"m{-n}"
    text = n if isinstance(n, str) else f"{type(n).__name__}:{n!r}"
    return "s" + "".join(c if c.isascii() and c.isalnum() else f"_{ord(c):x}_" for c in text)
