"""Rendering: a figure (or a graph, drawn first) to an SVG / PNG / PDF / DOT / HTML file.

Flow: viz.unfolded / viz.folded / viz.graphical_model (a viz.figure.Figure) -> **viz.render**
-> files; ``.html`` goes through viz.html (the interactive page).

``render(fig, "out/x.png")`` picks the format from the suffix and runs Graphviz's ``dot``. Every
file is written to a temporary file in the same folder and renamed into place, so a failure
never leaves a partial file. The DOT text is written beside the picture only when asked
(``keep_dot=True``) or when ``dot`` is missing, so that it can be rendered later; then
:class:`GraphvizNotFound` says how to install Graphviz and where the DOT text is.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any

import graphviz

from .figure import (PNG_DPI, Figure, GraphvizError, GraphvizNotFound, dot_id, find_dot,
                     pipe)
from .folded import folded
from .graphical_model import graphical_model
from .html import page
from .unfolded import unfolded

__all__ = ["FORMATS", "PNG_DPI", "Figure", "GraphvizError", "GraphvizNotFound", "dot_id",
           "find_dot", "pipe", "render", "write_atomic"]

FORMATS = ("svg", "png", "pdf", "dot", "gv", "html")
VIEWS = {"unfolded": unfolded, "folded": folded, "graphical": graphical_model}


def render(fig: Any, path: str | os.PathLike, view: str = "unfolded", keep_dot: bool = False,
           **options: Any) -> str:
    """Write a figure to ``path``; the format comes from the suffix.

    Parameters
    ----------
    fig : viz.figure.Figure, or a graph (networkx.DiGraph, ``to_networkx()`` object, JSON path)
        A figure from :func:`viz.unfolded`, :func:`viz.folded`, :func:`viz.graphical_model`;
        a graph is drawn first with ``view`` and ``options``.
    path : str or os.PathLike
        ``.svg``, ``.png``, ``.pdf`` (run Graphviz), ``.dot`` / ``.gv`` (DOT text only),
        ``.html`` (one self-contained interactive page, see :func:`viz.html.page`).
    view : {"unfolded", "folded", "graphical"}
        The view used when ``fig`` is a graph.
    keep_dot : bool
        Also write the DOT text beside the picture (``x.png`` -> ``x.dot``). It is always
        written when Graphviz is missing.
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
    GraphvizError
        If ``dot`` fails on the figure; nothing is written.
    ValueError
        For an unknown suffix or view.
    OSError
        When the path cannot be written (its folder is a file, the path is a folder, ...).

    Examples
    --------
    >>> render(folded(G), "out/elman_folded.svg")     # doctest: +SKIP
    'out/elman_folded.svg'
    >>> render(G, "out/elman.html", view="unfolded", grads=True)   # doctest: +SKIP
    'out/elman.html'
    """
    path = os.fspath(path)
    fmt = os.path.splitext(path)[1].lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"render: cannot tell the format of {path!r}; use a suffix among "
                         f"{', '.join('.' + f for f in FORMATS)}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"render: {path!r} is a folder; give a file name like "
                                f"{os.path.join(path, 'figure.' + fmt)!r}")
    if not isinstance(fig, graphviz.Digraph):
        fig = draw(fig, view, **options)
    elif options:
        raise TypeError(f"render: options {sorted(options)} only apply when drawing a graph")
    _make_parent(path)
    dot_path = os.path.splitext(path)[0] + ".dot"
    if fmt in ("dot", "gv"):
        write_atomic(path, fig.source.encode("utf-8", "backslashreplace"))
        return path
    try:
        data = page(fig) if fmt == "html" else pipe(fig, fmt)
    except GraphvizNotFound as exc:
        write_atomic(dot_path, fig.source.encode("utf-8", "backslashreplace"))
        raise GraphvizNotFound(f"{exc} The DOT text was written to {dot_path!r}; render it "
                               f"later with `dot -T{fmt} {dot_path} -o {path}`.") from None
    if keep_dot:
        write_atomic(dot_path, fig.source.encode("utf-8", "backslashreplace"))
    write_atomic(path, data)
    return path


def draw(graph: Any, view: str = "unfolded", **options: Any) -> Figure:
    """Draw ``graph`` with the view named ``view`` (``unfolded``, ``folded``, ``graphical``)."""
    if view not in VIEWS:
        raise ValueError(f"render: view must be one of {sorted(VIEWS)}, got {view!r}")
    return VIEWS[view](graph, **options)


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place.

    A reader sees the old file or the whole new one, never a partial one; on any failure the
    temporary file is removed.
    """
    fd, tmp = tempfile.mkstemp(prefix=".viz-", suffix=".tmp", dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _make_parent(path: str) -> None:
    parent = os.path.dirname(path)
    if not parent:
        return
    try:
        os.makedirs(parent, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = parent
        while blocker and not os.path.exists(blocker):
            blocker = os.path.dirname(blocker)
        raise NotADirectoryError(f"render: cannot write {path!r}: {blocker!r} is a file, "
                                 f"not a folder") from None
