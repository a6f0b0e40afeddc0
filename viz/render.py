"""Rendering: DOT text to SVG / PNG / PDF files through Graphviz's ``dot``.

Flow: viz.unfolded / viz.folded / viz.graphical_model -> **viz.render** -> files, notebooks.

``render(fig, "out/x.png")`` picks the format from the suffix, always writes the ``.dot`` text
beside the picture first, then runs ``dot``. When ``dot`` is not installed it raises
:class:`GraphvizNotFound`, which says how to install it and where the DOT text was written.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import graphviz

FORMATS = ("svg", "png", "pdf", "dot", "gv")
PNG_DPI = 144  # readable PNGs: Graphviz's default 96 dpi makes small text


class GraphvizNotFound(RuntimeError):
    """Graphviz's ``dot`` executable is not installed (or not on PATH)."""


def find_dot() -> str:
    """Path of Graphviz's ``dot``; raises :class:`GraphvizNotFound` with install instructions."""
    path = shutil.which("dot")
    if path is None:
        raise GraphvizNotFound(
            "Graphviz's `dot` program was not found on PATH. Install Graphviz: "
            "`apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS) or "
            "`conda install graphviz`; the Python package alone is not enough.")
    return path


class Figure(graphviz.Digraph):
    """A ``graphviz.Digraph`` that shows itself as SVG in Jupyter (``_repr_svg_``)."""

    def _repr_svg_(self) -> str:
        return pipe(self, "svg").decode("utf-8")


def pipe(fig: graphviz.Digraph, fmt: str = "svg") -> bytes:
    """Run ``dot -T<fmt>`` on the figure's DOT text and return the output bytes."""
    dot = find_dot()
    args = [dot, f"-T{fmt}"] + ([f"-Gdpi={PNG_DPI}"] if fmt == "png" else [])
    proc = subprocess.run(args, input=fig.source.encode("utf-8"), capture_output=True,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"dot -T{fmt} failed (exit {proc.returncode}): "
                           f"{proc.stderr.decode('utf-8', 'replace').strip()[:500]}")
    return proc.stdout


def render(fig: Any, path: str | os.PathLike, view: str = "unfolded", **options: Any) -> str:
    """Write a figure to ``path``; the format comes from the suffix.

    Parameters
    ----------
    fig : graphviz.Digraph, or a graph (networkx.DiGraph, ``to_networkx()`` object, JSON path)
        A figure from :func:`viz.unfolded`, :func:`viz.folded`, :func:`viz.graphical_model`;
        a graph is drawn first with ``view`` (``"unfolded"`` or ``"folded"``) and ``options``.
    path : str or os.PathLike
        ``.svg``, ``.png``, ``.pdf`` (run Graphviz), ``.dot`` / ``.gv`` (DOT text only).
    view : {"unfolded", "folded"}
        The view used when ``fig`` is a graph.
    **options
        Passed to the view function (``level``, ``max_steps``, ``grads``).

    Returns
    -------
    str
        The path written.

    Raises
    ------
    GraphvizNotFound
        If ``dot`` is missing; the ``.dot`` file is written before this is raised.
    ValueError
        For an unknown suffix or view.

    Examples
    --------
    >>> render(folded(G), "out/elman_folded.svg")     # doctest: +SKIP
    'out/elman_folded.svg'
    """
    path = os.fspath(path)
    fmt = os.path.splitext(path)[1].lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"render: cannot tell the format of {path!r}; use a suffix among "
                         f"{', '.join('.' + f for f in FORMATS)}")
    if not isinstance(fig, graphviz.Digraph):
        fig = _draw(fig, view, options)
    elif options:
        raise TypeError(f"render: options {sorted(options)} only apply when drawing a graph")
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    dot_path = path if fmt in ("dot", "gv") else os.path.splitext(path)[0] + ".dot"
    with open(dot_path, "w", encoding="utf-8") as fh:
        fh.write(fig.source)
    if fmt in ("dot", "gv"):
        return path
    try:
        data = pipe(fig, fmt)
    except GraphvizNotFound as exc:
        raise GraphvizNotFound(f"{exc} The DOT text was written to {dot_path!r}; render it "
                               f"later with `dot -T{fmt} {dot_path} -o {path}`.") from None
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def _draw(graph: Any, view: str, options: dict) -> graphviz.Digraph:
    from .folded import folded
    from .unfolded import unfolded
    views = {"unfolded": unfolded, "folded": folded}
    if view not in views:
        raise ValueError(f"render: view must be one of {sorted(views)}, got {view!r}")
    return views[view](graph, **options)
