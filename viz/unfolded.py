"""The unfolded view: one column per time step, left to right, one row per role.

Flow: viz.schema -> viz.levels (variable level) -> **viz.unfolded** -> viz.render.

Layout (Graphviz ``dot``, ``rankdir=BT`` so inputs sit at the bottom and losses on top, as in the
book): every role (h, o, the matmul reading W, ...) is one ``rank=same`` row; invisible edges
chain each row left to right so columns follow time, and a ``group`` per column keeps a step's
nodes stacked straight. Edges between steps do not constrain ranks. Long sequences keep the
first and last steps and put one "⋯ (n steps)" column between them. A tree (a recursive net
recorded per node) is not a sequence: viz.tree draws it bottom-up as fig. 10.14.
"""
from __future__ import annotations

from typing import Any

import networkx as nx

from .fold import param_reads, role_keys
from .grads import Scale, edge_overlay, legend, overlay_node
from .levels import choose_level, param_expressions, variable_level
from .figure import Figure, dot_id, drawing
from .schema import MARK, load, sort_key
from .style import (EDGE_ATTR, ELLIPSIS_ATTRS, GRAPH_ATTR, NODE_ATTR, edge_label,
                    node_attrs, op_label, var_label)
from .timeline import columns, is_delay, timelines
from .tree import is_tree, tree_figure, tree_graph

DEFAULT_MAX_STEPS = 8
STATE_NAMES = ("h", "g", "s", "z", "a")


def unfolded_graph(graph: Any, level: str = "variable", max_steps: int | None = DEFAULT_MAX_STEPS,
                   params: str = "once") -> nx.DiGraph:
    """The graph the unfolded view draws, as networkx (for tests and further processing).

    Parameters
    ----------
    graph : networkx.DiGraph, object with ``to_networkx()``, or path
        A recorded graph in the tinygraph schema.
    level : {"variable", "op"}
        Named tensors with parameter-labelled edges, or every op with parameter nodes.
    max_steps : int or None
        Show at most this many steps per timeline (first and last halves, with one elision
        column between); ``None`` shows every step.
    params : {"once", "per_step"}
        At op level, draw each parameter once (fanned out) or once per step that reads it.

    Returns
    -------
    networkx.DiGraph
        Shown nodes keep their ids and attributes, plus ``column`` (int, or None outside steps)
        and ``row`` (role id, or None). Elision nodes have string ids ``"...c<col>r<row>"``,
        ``kind="ellipsis"`` and ``hidden`` (the number of steps they stand for); per-step
        parameter copies have ids ``"<param id>@c<col>"``. Edges keep their attributes plus
        ``delay`` (joins two steps of one timeline).

        A recursive net recorded per node (several unlinked nodes named h in one step: a tree,
        see `viz.tree`) gives instead :func:`viz.tree.tree_graph`: graph attribute
        ``layout="tree"``, nodes with ``tier``, ``position`` and ``leaf``, drawn whole.

    Examples
    --------
    >>> V = unfolded_graph(G, max_steps=6)                              # doctest: +SKIP
    >>> sorted({d["column"] for _, d in V.nodes(data=True) if d["name"] == "h"})  # doctest: +SKIP
    [0, 1, 2, 3, 4, 5, 6]
    """
    if level not in ("variable", "op"):
        raise ValueError(f"unfolded: level must be 'variable' or 'op', got {level!r}")
    if params not in ("once", "per_step"):
        raise ValueError(f"unfolded: params must be 'once' or 'per_step', got {params!r}")
    if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 2):
        raise ValueError(f"unfolded: max_steps must be an int >= 2 or None, got {max_steps!r}")
    full = load(graph)
    if is_tree(full):  # a recursive net recorded per node: drawn as the tree it is, whole
        return tree_graph(variable_level(full) if level == "variable" else full)
    col_of, cols = columns(full, max_steps)
    tl = timelines(full)
    G = _trim(full, col_of, cols)
    if level == "variable":
        G = variable_level(G)
    keys = role_keys(G)
    pexpr = param_expressions(G) if level == "op" else {}
    _initial_states_join_their_row(G, keys, tl)
    row_ids: dict[tuple, int] = {}
    for n in sorted(G, key=sort_key):
        if G.nodes[n]["step"] is not None:
            row_ids.setdefault(keys[n], len(row_ids))
    hidden_cols = {c.index: c for c in cols if c.step is None}

    V = nx.DiGraph()
    V.graph.update(G.graph)
    V.graph.update(level=level, columns=cols)
    V.graph.pop(MARK, None)

    def placed(n: Any) -> Any:
        """The view node standing for n (itself, or its elision node)."""
        c = col_of.get(n)
        if c is None or c not in hidden_cols:
            return n
        r = row_ids[keys[n]]
        e = f"...c{c}r{r}"
        if e not in V:
            V.add_node(e, kind="ellipsis", op="ellipsis", name=None, step=None, scope="",
                       column=c, row=r, hidden=hidden_cols[c].n_hidden, grad_norm=None,
                       timeline=hidden_cols[c].timeline)
        return e

    for n in sorted(G, key=sort_key):
        c = col_of.get(n)
        if c is not None and c in hidden_cols:
            placed(n)  # every row gets its elision node, so the column stays aligned
            continue
        d = G.nodes[n]
        if params == "per_step" and d["kind"] == "param":
            continue
        V.add_node(n, **d, column=c, row=row_ids[keys[n]] if c is not None else None,
                   timeline=cols[c].timeline if c is not None else None)
    for u, v, d in sorted(G.edges(data=True), key=lambda e: (sort_key(e[1]), sort_key(e[0]))):
        hu, hv = col_of.get(u) in hidden_cols, col_of.get(v) in hidden_cols
        du = G.nodes[u]
        if hv and (du["kind"] == "param" or col_of.get(u) is None and G.in_degree(u) == 0):
            continue  # leaves fanning into hidden steps are not drawn
        if hu and hv:
            continue
        mu, mv = placed(u), placed(v)
        if du["kind"] == "param" and params == "per_step":
            cv = col_of.get(v)
            mu = f"{u}@c{cv}" if cv is not None else f"{u}@once"
            if mu not in V:
                V.add_node(mu, **du, column=cv, row=None)
        if V.has_edge(mu, mv):
            continue
        delay = is_delay(G, u, v, tl)
        V.add_edge(mu, mv, **d, delay=delay)
        if level == "op":  # parameter nodes are drawn: only a delay edge names what it carries
            V.edges[mu, mv]["label"] = ",".join(param_reads(G, v, pexpr)) if delay else ""
        for m in (mu, mv):
            if V.nodes[m]["kind"] == "ellipsis":
                V.nodes[m]["linked"] = True
    return V


def _initial_states_join_their_row(G: nx.DiGraph, keys: dict, tl: dict) -> None:
    """h(0) sits in the row of the h it starts, left of h(1) (g(τ+1): right of g(τ))."""
    count: dict[tuple, int] = {}
    for k in keys.values():
        count[k] = count.get(k, 0) + 1
    for n in sorted(G, key=sort_key):
        d = G.nodes[n]
        if d["step"] is None or G.in_degree(n) or count[keys[n]] != 1 or not d["name"]:
            continue
        for c in sorted(G.successors(n), key=sort_key):
            if G.nodes[c]["name"] == d["name"] and is_delay(G, n, c, tl):
                keys[n] = keys[c]
                break


def _trim(G: nx.DiGraph, col_of: dict, cols: list) -> nx.DiGraph:
    """Drop the hidden steps except the two next to the shown ones, before any contraction.

    The elision only needs the boundary steps (their edges to the shown ones become the edges of
    the "⋯" nodes), so a 10,000-step graph is contracted over a few steps, not all of them.
    """
    hidden = [c for c in cols if c.step is None]
    if not hidden:
        return G
    hidden_idx = {c.index for c in hidden}
    boundary = {(c.timeline, c.hidden[0]) for c in hidden} | \
        {(c.timeline, c.hidden[1]) for c in hidden}
    line = {c.index: c.timeline for c in cols}
    keep = [n for n, d in G.nodes(data=True)
            if col_of.get(n) not in hidden_idx or (line[col_of[n]], d["step"]) in boundary]
    return G.subgraph(keep).copy()


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
    fig = Figure(name="unfolded", graph_attr=dict(GRAPH_ATTR), node_attr=dict(NODE_ATTR),
                 edge_attr=dict(EDGE_ATTR))
    if note:
        fig.attr(label=note, labelloc="b", fontsize="11")
    scale = Scale.of((d for _, d in V.nodes(data=True)), graph=G) if grads else None
    if grads:
        fig.attr(label=legend(scale), labelloc="t", fontsize="12")
    ids = {n: _dot_id(n) for n in V}
    by_id = {v: k for k, v in ids.items()}
    rows: dict[int, list] = {}
    params_once: list[tuple[str, dict]] = []
    label_row = _label_row(V)
    for n in sorted(V, key=sort_key):
        d = V.nodes[n]
        attrs = _node_view(d, level, label_row, scale)
        if d["column"] is not None:
            attrs["group"] = f"c{d['column']}"
        if d["row"] is not None:
            rows.setdefault(d["row"], []).append(n)
        elif d["kind"] == "param" and d["column"] is None:
            params_once.append((ids[n], attrs))
        else:
            fig.node(ids[n], **attrs)
    if params_once:  # one rank of their own under the inputs, so they do not split the columns
        with fig.subgraph(name="params") as sub:
            sub.attr(rank="source")
            for name, attrs in params_once:
                sub.node(name, **attrs)
    cells = _grid(V, rows)
    for r in sorted({r for r, _ in cells}):
        members = sorted((c, dot_id) for (rr, c), dot_id in cells.items() if rr == r)
        with fig.subgraph(name=f"row{r}") as sub:
            sub.attr(rank="same")
            for c, dot_id in members:
                n = by_id.get(dot_id)
                attrs = (_node_view(V.nodes[n], level, label_row, scale) if n is not None
                         else {"style": "invis", "shape": "point", "width": "0.01"})
                sub.node(dot_id, **attrs, group=f"c{c}")
            for (_, a), (_, b) in zip(members, members[1:]):
                na, nb = by_id.get(a), by_id.get(b)
                if na is None or nb is None or not (V.has_edge(na, nb) or V.has_edge(nb, na)):
                    sub.edge(a, b, style="invis", weight="4")  # doubled flat edges bend
    _stack_rows(fig, V, cells, by_id)
    height = {r: i for i, r in enumerate(_row_order(V))}
    for u, v, d in sorted(V.edges(data=True), key=lambda e: (sort_key(e[1]), sort_key(e[0]))):
        a, b, attrs = _edge_view(V, u, v, d, ids, level, scale, height)
        fig.edge(a, b, **attrs)
    return fig


def _grid(V: nx.DiGraph, rows: dict[int, list]) -> dict[tuple[int, int], str]:
    """(row, column) -> DOT id of the nodes placed in rows, plus invisible placeholders.

    Every column of a timeline gets a cell in the timeline's bottom row: dot does not always
    keep a lone node like h(0) left of h(1) by its edge alone, but it keeps a chain in order.
    """
    cells = {(r, V.nodes[n]["column"]): _dot_id(n) for r, ns in rows.items() for n in ns}
    order = _row_order(V)
    bottom: dict[int, int] = {}
    columns: dict[int, set] = {}
    for r in order:
        line = V.nodes[rows[r][0]].get("timeline")
        bottom.setdefault(line, r)
        columns.setdefault(line, set()).update(V.nodes[n]["column"] for n in rows[r])
    for line, r in bottom.items():
        for c in columns[line]:
            cells.setdefault((r, c), f"p{c}")
    return cells


def _stack_rows(fig: Figure, V: nx.DiGraph, cells: dict, by_id: dict) -> None:
    """One rank per row: invisible edges up each column, rows in dependency order.

    Without them dot puts h and g (or two layers) side by side in one rank and the columns
    tangle; with them every step reads bottom-up like the book's figures.
    """
    order = _row_order(V)
    for c in sorted({c for _, c in cells}):
        below = None
        for r in order:
            here = cells.get((r, c))
            if here is None:
                continue
            nb, nh = by_id.get(below), by_id.get(here)
            if below is not None and not (nb is not None and nh is not None
                                          and V.has_edge(nb, nh)):
                fig.edge(below, here, style="invis", weight="8")
            below = here
    # timelines (an encoder, then its decoder) climb like a staircase, as in the book's fig.
    # 10.12: every row of the next timeline above every row of the one before, so their rows
    # never share a rank and interleave
    line_rows: dict[int, list[int]] = {}
    first_cell = {}
    for (r, c), dot_id in sorted(cells.items()):
        if dot_id in by_id:  # a real node, not a placeholder
            first_cell.setdefault(r, dot_id)
    for r in order:
        n = by_id.get(first_cell.get(r))
        line = V.nodes[n].get("timeline") if n is not None else None
        if line is not None:
            line_rows.setdefault(line, []).append(r)
    lines = sorted(line_rows)
    for a, b in zip(lines, lines[1:]):
        fig.edge(first_cell[line_rows[a][-1]], first_cell[line_rows[b][0]], style="invis")


def _row_order(V: nx.DiGraph) -> list[int]:
    """Rows bottom to top: a topological order of the within-step edges between rows."""
    R = nx.DiGraph()
    for _, d in V.nodes(data=True):
        if d.get("row") is not None:
            R.add_node(d["row"])
    for u, v, d in V.edges(data=True):
        ru, rv = V.nodes[u].get("row"), V.nodes[v].get("row")
        if ru is not None and rv is not None and ru != rv and not d["delay"] \
                and "ellipsis" not in (V.nodes[u]["kind"], V.nodes[v]["kind"]):
            R.add_edge(ru, rv)
    if not nx.is_directed_acyclic_graph(R):
        return sorted(R)
    return list(nx.lexicographical_topological_sort(R))


def _dot_id(n: Any) -> str:
    return dot_id(n)


def _label_row(V: nx.DiGraph) -> int | None:
    """The row whose elision node says "(n steps)": most delay edges (h), then a state row."""
    score: dict[int, list] = {}
    for n, d in V.nodes(data=True):
        if d["kind"] == "ellipsis":
            score.setdefault(d["row"], [0, 0, 0])
        elif d.get("row") is not None and d["name"] in STATE_NAMES:
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
    if level == "variable" and d["kind"] != "param":
        label = var_label(d["name"], d["step"])
    else:
        label = op_label(d, d["step"], show_step=True)
    attrs = node_attrs(d, label, level)
    return overlay_node(attrs, d, scale) if scale is not None else attrs


def _edge_view(V: nx.DiGraph, u: Any, v: Any, d: dict, ids: dict, level: str,
               scale: Scale | None, height: dict) -> tuple:
    attrs: dict[str, str] = {}
    du, dv = V.nodes[u], V.nodes[v]
    if d.get("label"):
        attrs["label"] = edge_label(d["label"])
    same_row = du.get("row") is not None and du.get("row") == dv.get("row")
    crosses = d["delay"] or "ellipsis" in (du["kind"], dv["kind"])
    hu, hv = height.get(du.get("row")), height.get(dv.get("row"))
    if crosses and not same_row and (hu is None or hv is None):
        attrs["constraint"] = "false"  # only edges within a step decide the rows
    if d.get("detached") or dv.get("op") == "detach":
        attrs["style"] = "dashed"
    if scale is not None:
        attrs.update(edge_overlay(d.get("grad_norm"), scale, dv))
    a, b = ids[u], ids[v]
    if same_row and "label" in attrs:  # a label on a flat edge adds a rank and bends it
        attrs["xlabel"] = attrs.pop("label")
    if same_row and (du["column"] or 0) > (dv["column"] or 0):
        a, b = b, a  # keep every flat edge left to right; the arrow still points at v
        attrs["dir"] = "back"
    elif crosses and hu is not None and hv is not None and hu > hv:
        a, b = b, a  # h(t-1) -> z(t) points down: drawn upward with the arrow reversed, so it
        attrs["dir"] = "back"  # agrees with the rows and dot routes a smooth curve
    return a, b, attrs
