"""The unfolded view: one column per time step, left to right, one row per role.

Flow: viz.schema -> viz.levels -> viz.unfold (columns, rows) -> **viz.unfolded** -> viz.render.

Layout (Graphviz ``dot``, ``rankdir=BT`` so inputs sit at the bottom and losses on top, as in the
book): every row of :func:`viz.unfold.unfolded_graph` is one ``rank=same`` row, stacked in
:func:`viz.unfold.row_order`; invisible edges chain each row left to right so columns follow
time, and a ``group`` per column keeps a step's nodes stacked straight. Only edges between
adjacent rows of one step pull on the layout: edges skipping a row (x(t) -> g(t) past h(t)) and
edges between steps do not, so no column bends towards them. Several time axes (an encoder,
then its decoder) climb to the right like a staircase, and the context C between them belongs
to no column (it settles under the decoder steps it feeds). A tree (a recursive net recorded per node) is not a
sequence: viz.tree draws it bottom-up as fig. 10.14.
"""
from __future__ import annotations

from typing import Any

import networkx as nx

from .grads import Scale
from .header import edge_style, edge_tooltip, new_figure, node_label, node_tooltip, overlay
from .levels import choose_level
from .figure import Figure, dot_id, drawing
from .schema import sort_key
from .style import ELLIPSIS_ATTRS, base_name, category, node_attrs
from .tree import tree_figure
from .unfold import DEFAULT_MAX_STEPS, unfolded_graph

__all__ = ["DEFAULT_MAX_STEPS", "unfolded", "unfolded_graph"]
STATE_NAMES = ("h", "g", "s", "z", "a")


@drawing("unfolded")
def unfolded(graph: Any, level: str = "variable", max_steps: int | None = DEFAULT_MAX_STEPS,
             grads: bool = False, params: str = "once") -> Figure:
    """Draw the unfolded computational graph, time steps left to right.

    Parameters
    ----------
    graph : networkx.DiGraph, object with ``to_networkx()``, or path
        A recorded graph in the tinygraph schema.
    level : {"variable", "op"}
        The textbook's named tensors, or every op.
    max_steps : int or None
        Steps shown per timeline before eliding the middle (default 8).
    grads : bool
        Overlay gradient norms (needs ``grad_norm`` from ``backward(keep_grads=True)``).
    params : {"once", "per_step"}
        At op level, one node per parameter, or a copy per step.

    Returns
    -------
    viz.render.Figure
        A ``graphviz.Digraph``; ``.source`` is the DOT text, ``viz.render(fig, "x.png")`` draws it.
        A tree recorded per node is drawn as a tree (leaves in one row, each h above its
        children); ``max_steps`` and ``params`` do not apply to it.

    Examples
    --------
    >>> fig = unfolded(G, max_steps=6)                 # doctest: +SKIP
    >>> render(fig, "out/elman_unfolded.png")          # doctest: +SKIP
    """
    G, level, note = choose_level(graph, level)
    V = unfolded_graph(G, level, max_steps, params)
    if V.graph.get("layout") == "tree":
        return tree_figure(V, level, grads, note)
    scale = Scale.of((d for _, d in V.nodes(data=True)), graph=G) if grads else None
    fig = new_figure("unfolded", note, scale, graph=G)
    ids = {n: dot_id(n) for n in V}
    by_id = {v: k for k, v in ids.items()}
    rows: dict[int, list] = {}
    params_once: list[tuple[str, dict]] = []
    totals: list[tuple[str, dict]] = []
    label_row = _label_row(V)
    for n in sorted(V, key=sort_key):
        d = V.nodes[n]
        attrs = _node_view(d, level, label_row, scale)
        # no group for a step's own copy of W: it sits beside its column, not in it
        if d["column"] is not None and d["row"] is not None:
            attrs["group"] = f"c{d['column']}"
        if d["row"] is not None:
            rows.setdefault(d["row"], []).append(n)
        elif d["kind"] == "param" and d["column"] is None:
            params_once.append((ids[n], attrs))
        elif category(d) == "loss" and V.in_degree(n):
            totals.append((ids[n], attrs))
        else:
            fig.node(ids[n], **attrs)
    if totals:  # the total loss on a rank of its own above every column, not among the y(t)
        with fig.subgraph(name="totals") as sub:
            sub.attr(rank="max")
            for name, attrs in totals:
                sub.node(name, **attrs)
    if params_once:  # one rank of their own under the inputs, so they do not split the columns
        with fig.subgraph(name="params") as sub:
            sub.attr(rank="source")
            for name, attrs in params_once:
                sub.node(name, **attrs)
    cells = _grid(V, rows)
    for r in sorted({r for r, _ in cells}):
        members = sorted((c, cell) for (rr, c), cell in cells.items() if rr == r)
        with fig.subgraph(name=f"row{r}") as sub:
            sub.attr(rank="same")
            for c, cell in members:
                n = by_id.get(cell)
                attrs = (_node_view(V.nodes[n], level, label_row, scale) if n is not None
                         else {"style": "invis", "shape": "point", "width": "0.01"})
                if n is None or not V.nodes[n].get("bridge"):
                    attrs["group"] = f"c{c}"
                sub.node(cell, **attrs)
            for (_, a), (_, b) in zip(members, members[1:]):
                na, nb = by_id.get(a), by_id.get(b)
                if na is None or nb is None or not (V.has_edge(na, nb) or V.has_edge(nb, na)):
                    sub.edge(a, b, style="invis", weight="4")  # doubled flat edges bend
    _stack_rows(fig, V, cells, by_id)
    top_row = [cells[k] for k in sorted(cells) if k[0] == V.graph["row_order"][-1]] \
        if cells else []
    top = top_row[0] if top_row else None
    for name, _ in totals:  # one rank above the top row
        if top is not None:
            fig.edge(top, name, style="invis", weight="0")
    height = {r: i for i, r in enumerate(V.graph["row_order"])}
    for u, v, d in sorted(V.edges(data=True), key=lambda e: (sort_key(e[1]), sort_key(e[0]))):
        a, b, attrs = _edge_view(V, u, v, d, ids, level, scale, height)
        fig.edge(a, b, **attrs)
    return fig


def _grid(V: nx.DiGraph, rows: dict[int, list]) -> dict[tuple[int, int], str]:
    """(row, column) -> DOT id of the nodes placed in rows, plus invisible placeholders.

    Every column of a timeline gets a cell in the timeline's bottom row: dot does not always
    keep a lone node like h(0) left of h(1) by its edge alone, but it keeps a chain in order.
    Placeholder ids are ``p<column>r<row>``.
    """
    cells = {(r, V.nodes[n]["column"]): dot_id(n) for r, ns in rows.items() for n in ns}
    order = V.graph["row_order"]
    bottom: dict[int, int] = {}
    columns: dict[int, set] = {}
    for r in order:
        line = V.nodes[rows[r][0]].get("timeline")
        bottom.setdefault(line, r)
        columns.setdefault(line, set()).update(V.nodes[n]["column"] for n in rows[r])
    # a later timeline's bottom row also holds the earlier columns, so it starts to their
    # right: the decoder climbs to the right of the encoder like the book's staircase
    earlier: set = set()
    for line in sorted(bottom):
        for c in columns[line] | {c for c in earlier if c < min(columns[line])}:
            cells.setdefault((bottom[line], c), f"p{c}r{bottom[line]}")
        earlier |= columns[line]
    return cells


def _stack_rows(fig: Figure, V: nx.DiGraph, cells: dict, by_id: dict) -> None:
    """One rank per row: invisible edges up each column, rows in dependency order.

    Without them dot puts h and g (or two layers) side by side in one rank and the columns
    tangle; with them every step reads bottom-up like the book's figures.
    """
    order = V.graph["row_order"]
    height = {r: i for i, r in enumerate(order)}
    for c in sorted({c for _, c in cells}):
        below = below_row = None
        for r in order:
            here = cells.get((r, c))
            if here is None:
                continue
            nb, nh = by_id.get(below), by_id.get(here)
            # a real edge between rows next to each other holds the column itself; one that
            # skips rows empty in this column weighs nothing (see _edge_view): add ours
            held = nb is not None and nh is not None and V.has_edge(nb, nh) and \
                height[r] - height[below_row] == 1
            if below is not None and not held:
                fig.edge(below, here, style="invis", weight="8")
            below, below_row = here, r
    # timelines (an encoder, then its decoder) climb like a staircase, as in the book's fig.
    # 10.12: every row of the next timeline above every row of the one before, so their rows
    # never share a rank and interleave
    line_rows: dict[int, list[int]] = {}
    first_cell = {}
    for (r, c), cell in sorted(cells.items()):
        if cell in by_id:  # a real node, not a placeholder
            first_cell.setdefault(r, cell)
    for r in order:
        n = by_id.get(first_cell.get(r))
        line = V.nodes[n].get("timeline") if n is not None else None
        if line is not None:
            line_rows.setdefault(line, []).append(r)
    lines = sorted(line_rows)
    for a, b in zip(lines, lines[1:]):
        fig.edge(first_cell[line_rows[a][-1]], first_cell[line_rows[b][0]], style="invis")


def _label_row(V: nx.DiGraph) -> int | None:
    """The row whose elision node says "(n steps)": most delay edges (h), then a state row."""
    score: dict[int, list] = {}
    for n, d in V.nodes(data=True):
        if d["kind"] == "ellipsis":
            score.setdefault(d["row"], [0, 0, 0])
        elif d.get("row") is not None and base_name(d["name"]) in STATE_NAMES:
            score.setdefault(d["row"], [0, 0, 0])[1] = 1
    for u, v, d in V.edges(data=True):
        r = V.nodes[v].get("row")
        if r in score:
            score[r][0] += bool(d["delay"])
            score[r][2] += 1
    rows = [r for r, d in V.nodes(data=True) if d["kind"] == "ellipsis"]
    if not rows:
        return None
    return max(sorted({V.nodes[r]["row"] for r in rows}), key=lambda r: tuple(score[r]))


def _node_view(d: dict, level: str, label_row: int | None, scale: Scale | None) -> dict:
    if d["kind"] == "ellipsis":
        if d["row"] == label_row:
            return dict(ELLIPSIS_ATTRS, label=f"⋯ ({d['hidden']} steps)")
        if not d.get("linked"):  # a placeholder keeping the column straight
            return dict(ELLIPSIS_ATTRS, label="", width="0.1", height="0.1")
        return dict(ELLIPSIS_ATTRS, label="⋯")
    attrs = node_attrs(d, node_label(d, level, d["step"]), level)
    attrs["tooltip"] = node_tooltip(d, d["step"])
    return overlay(attrs, d, scale) if scale is not None else attrs


def _edge_view(V: nx.DiGraph, u: Any, v: Any, d: dict, ids: dict, level: str,
               scale: Scale | None, height: dict) -> tuple:
    du, dv = V.nodes[u], V.nodes[v]
    attrs = edge_style(d.get("label") or "", bool(d.get("detached")) or dv.get("op") == "detach",
                       d.get("grad_norm"), scale, dv)
    if "ellipsis" not in (du["kind"], dv["kind"]):
        attrs["tooltip"] = edge_tooltip(du, dv, d.get("label") or "", d.get("grad_norm"))
    same_row = du.get("row") is not None and du.get("row") == dv.get("row")
    crosses = d["delay"] or "ellipsis" in (du["kind"], dv["kind"])
    hu, hv = height.get(du.get("row")), height.get(dv.get("row"))
    if crosses and not same_row and (hu is None or hv is None):
        attrs["constraint"] = "false"  # only edges within a step decide the rows
    elif hu is not None and hv is not None and abs(hu - hv) > 1 and du["column"] == dv["column"]:
        # x(t) -> g(t) past h(t): the invisible column edges keep the rows; an edge skipping
        # a row would pull the column aside (dot centres a node between its neighbours)
        attrs["weight"] = "0"
    a, b = ids[u], ids[v]
    if same_row and "label" in attrs:  # a label on a flat edge adds a rank and bends it
        attrs["xlabel"] = attrs.pop("label")
    if same_row and (du["column"] or 0) > (dv["column"] or 0):
        a, b = b, a  # keep every flat edge left to right; the arrow still points at v
        attrs["dir"] = "back"
    elif hu is not None and hv is not None and hu > hv:
        a, b = b, a  # h(t-1) -> z(t), y(t) -> L(t) point down: drawn upward with the arrow
        attrs["dir"] = "back"  # reversed, so they agree with the rows
    return a, b, attrs
