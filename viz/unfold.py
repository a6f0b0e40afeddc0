"""Unfolding: the recorded graph -> the model the unfolded view draws (columns and rows).

Flow: viz.schema -> viz.names -> viz.levels (variable level) -> **viz.unfold** -> viz.unfolded
(drawing), as viz.fold -> viz.folded.

Every step of a timeline is a column (long sequences keep the first and last steps and put one
elision column between them); every role (h, o, the matmul reading W, ...) is a row. The rows
are stacked as the book stacks them: a topological order of the edges inside a step (x, h, o,
L), with a target drawn above the loss it feeds (y(t) on top of L(t), fig. 10.3) unless it also
feeds a later step (teacher forcing: y(t) -> h(t+1) keeps it below). A tree (a recursive net
recorded per node) is not a sequence: viz.tree models it.
"""
from __future__ import annotations

from typing import Any

import networkx as nx

from .fold import param_reads, role_keys
from .levels import param_expressions, variable_level
from .names import prepare
from .gcpause import without_gc
from .schema import MARK, edge_order, sort_key, tape_order
from .style import category
from .timeline import columns, is_delay, timelines
from .tree import is_tree, tree_graph

DEFAULT_MAX_STEPS = 8


@without_gc
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
        ``delay`` (joins two steps of one timeline). ``bridge`` is True on a node alone in
        its row that feeds a later timeline (the context C): it belongs to no column. Graph
        attribute ``row_order``: the rows bottom to top (:func:`row_order`).

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
    full = prepare(graph)
    if is_tree(full):  # a recursive net recorded per node: drawn as the tree it is, whole
        return tree_graph(variable_level(full) if level == "variable" else full)
    tl = timelines(full)
    col_of, cols = columns(full, max_steps, tl)
    G = _trim(full, col_of, cols)
    if level == "variable":
        G = variable_level(G)
    keys = role_keys(G)
    pexpr = param_expressions(G) if level == "op" else {}
    _initial_states_join_their_row(G, keys, tl)
    row_ids: dict[tuple, int] = {}
    for n in tape_order(G):
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

    for n in tape_order(G):
        c = col_of.get(n)
        if c is not None and c in hidden_cols:
            placed(n)  # every row gets its elision node, so the column stays aligned
            continue
        d = G.nodes[n]
        if params == "per_step" and (d["kind"] == "param" or _shared_expr(G, n, pexpr)):
            continue  # drawn once per step that reads it, below
        V.add_node(n, **d, column=c, row=row_ids[keys[n]] if c is not None else None,
                   timeline=cols[c].timeline if c is not None else None)
    for u, v, d in edge_order(G):
        hu, hv = col_of.get(u) in hidden_cols, col_of.get(v) in hidden_cols
        du = G.nodes[u]
        if hv and (du["kind"] == "param" or _shared_expr(G, u, pexpr)
                   or col_of.get(u) is None and G.in_degree(u) == 0):
            continue  # leaves fanning into hidden steps are not drawn
        if hu and hv:
            continue
        mu, mv = placed(u), placed(v)
        if params == "per_step" and (du["kind"] == "param" or _shared_expr(G, u, pexpr)):
            if _shared_expr(G, v, pexpr):
                continue  # W -> W.T: copied with the W.T it feeds
            mu = _copy_per_step(G, V, u, col_of.get(v), pexpr)
        if V.has_edge(mu, mv):
            continue
        delay = is_delay(G, u, v, tl)
        V.add_edge(mu, mv, **d, delay=delay)
        if level == "op":  # parameter nodes are drawn: only a delay edge names what it carries
            V.edges[mu, mv]["label"] = ",".join(param_reads(G, v, pexpr)) if delay else ""
        for m in (mu, mv):
            if V.nodes[m]["kind"] == "ellipsis":
                V.nodes[m]["linked"] = True
    rows: dict[int, int] = {}
    for _, d in V.nodes(data=True):
        if d.get("row") is not None:
            rows[d["row"]] = rows.get(d["row"], 0) + 1
    for n, d in V.nodes(data=True):  # the context C: alone in its row, read by a later axis
        d["bridge"] = d.get("row") is not None and rows[d["row"]] == 1 and any(
            V.nodes[c].get("timeline") not in (None, d["timeline"]) for c in V.successors(n))
    V.graph["row_order"] = row_order(V)
    return V


def _shared_expr(G: nx.DiGraph, n: Any, pexpr: dict) -> bool:
    """A value made from parameters alone outside the steps (W.T): drawn like a parameter."""
    d = G.nodes[n]
    return n in pexpr and d["kind"] == "op" and d["step"] is None


def _copy_per_step(G: nx.DiGraph, V: nx.DiGraph, u: Any, col: Any, pexpr: dict) -> str:
    """The copy of parameter (or parameter expression) ``u`` in column ``col``, with the
    copies of everything it is computed from (W for W.T): each step reads its own W, and no
    edge runs from one shared W across every column."""
    tag = f"c{col}" if col is not None else "once"
    top = f"{u}@{tag}"
    if top in V:
        return top
    V.add_node(top, **G.nodes[u], column=col, row=None)
    todo = [u]
    while todo:
        n = todo.pop()
        for p in G.predecessors(n):
            if G.nodes[p]["kind"] == "param" or _shared_expr(G, p, pexpr):
                if f"{p}@{tag}" not in V:
                    V.add_node(f"{p}@{tag}", **G.nodes[p], column=col, row=None)
                    todo.append(p)
                V.add_edge(f"{p}@{tag}", f"{n}@{tag}", **G.edges[p, n], delay=False, label="")
    return top


def _initial_states_join_their_row(G: nx.DiGraph, keys: dict, tl: dict) -> None:
    """h(0) sits in the row of the h it starts, left of h(1) (g(τ+1): right of g(τ)).

    The row is that of the state it feeds when it has h's name, else that of the recurring h
    of its scope (a deep transition reads h(0) into z(1), not into h(1)).
    """
    count: dict[tuple, int] = {}
    for k in keys.values():
        count[k] = count.get(k, 0) + 1
    recurring: dict[tuple, tuple] = {}
    for n in tape_order(G):
        d = G.nodes[n]
        if d["step"] is not None and d["name"] and count[keys[n]] > 1:
            recurring.setdefault((d["scope"], d["name"]), keys[n])
    for n in tape_order(G):
        d = G.nodes[n]
        if d["step"] is None or G.in_degree(n) or count[keys[n]] != 1 or not d["name"]:
            continue
        starts = [c for c in sorted(G.successors(n), key=sort_key) if is_delay(G, n, c, tl)]
        same = [c for c in starts if G.nodes[c]["name"] == d["name"]]
        if same:
            keys[n] = keys[same[0]]
        elif starts and (d["scope"], d["name"]) in recurring:
            keys[n] = recurring[d["scope"], d["name"]]


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


def row_order(V: nx.DiGraph) -> list[int]:
    """Rows bottom to top, as the book stacks them (see the module docstring).

    A topological order of the edges between rows inside a step, where a *target* row (y,
    read only by losses of its own step) goes above the loss rows it feeds.
    """
    R = nx.DiGraph()
    for _, d in V.nodes(data=True):
        if d.get("row") is not None:
            R.add_node(d["row"])
    targets = _target_rows(V)
    for u, v, d in V.edges(data=True):
        ru, rv = V.nodes[u].get("row"), V.nodes[v].get("row")
        if ru is not None and rv is not None and ru != rv and not d["delay"] \
                and "ellipsis" not in (V.nodes[u]["kind"], V.nodes[v]["kind"]):
            R.add_edge(*((rv, ru) if ru in targets else (ru, rv)))
    if not nx.is_directed_acyclic_graph(R):
        return sorted(R)
    return list(nx.lexicographical_topological_sort(R))


def _target_rows(V: nx.DiGraph) -> set[int]:
    """Rows of targets (y) whose every edge goes to a loss of the same step."""
    rows: dict[int, bool] = {}
    for n, d in V.nodes(data=True):
        if d.get("row") is None or d["kind"] == "ellipsis":
            continue
        ok = category(d) == "target" and not V.in_degree(n) and all(
            not e["delay"] and category(V.nodes[c]) == "loss"
            for _, c, e in V.out_edges(n, data=True) if V.nodes[c]["kind"] != "ellipsis")
        rows[d["row"]] = rows.get(d["row"], True) and ok
    return {r for r, ok in rows.items() if ok}
