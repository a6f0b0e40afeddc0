"""Trees: the unfolded view of a recursive net recorded one node at a time (fig. 10.14).

Flow: viz.schema -> viz.levels -> **viz.tree** (called by viz.unfolded) -> viz.render.

A recurrent step is one connected piece of the step's subgraph; a recursive net recorded per
node (``tg.step(height)`` around each composition) has several pieces per step, one per tree
node of that height, each with its own x or h. Such a graph is not a sequence, so it is not laid
out in columns: it is drawn as the DAG it is, bottom-up like the book's fig. 10.14. The leaves
x(1), x(2), ... sit in one row in recording order (left to right), every named tensor of one
(scope, name, step) shares a rank (the states of one height side by side), each h stands above
its children, and the edges keep their parameter labels (U into the leaves' h, W between h's,
V into o). Nothing recurses; the DOT text depends only on the graph.
"""
from __future__ import annotations

from typing import Any

import networkx as nx

from .fold import step_pieces
from .grads import Scale
from .header import edge_style, edge_tooltip, new_figure, node_label, node_tooltip, overlay
from .figure import Figure, dot_id
from .schema import MARK, load, sort_key
from .style import category, node_attrs
from .timeline import is_delay, timelines


def tier_key(d: dict) -> tuple | None:
    """The (scope, name, step) a named, step-tagged, non-parameter node shares with its tier."""
    if d["kind"] == "param" or not d["name"] or d["step"] is None:
        return None
    return (d["scope"], d["name"], d["step"])


def is_tree(graph: Any) -> bool:
    """True when some named tensor occurs in several pieces of one step (see module doc).

    A recurrent net has one piece per step, whatever its name; a per-node recursive net has
    one h per tree node of each height, each in its own piece. ``graph`` is anything
    :func:`viz.schema.load` takes.
    """
    G = load(graph)
    tiers: dict[tuple, list] = {}
    for n, d in G.nodes(data=True):
        key = tier_key(d)
        if key is not None:
            tiers.setdefault(key, []).append(n)
    shared = [ns for ns in tiers.values() if len(ns) > 1]
    if not shared:  # every named tensor once per step: a sequence, no need for the pieces
        return False
    piece = step_pieces(G)
    return any(len({piece[n] for n in ns}) > 1 for ns in shared)


def tree_graph(G: nx.DiGraph) -> nx.DiGraph:
    """The graph the tree view draws: ``G`` (one level) with its tiers and leaf numbers.

    Parameters
    ----------
    G : networkx.DiGraph
        A normalised graph (:func:`viz.schema.load`), at the op or the variable level.

    Returns
    -------
    networkx.DiGraph
        The same nodes and edges. Node attributes added: ``column`` and ``row`` (None: a tree
        has no time columns), ``tier`` (int id of the node's (scope, name, step), or None),
        ``position`` (0, 1, ... left to right within the tier, in recording order), ``leaf``
        (1, 2, ... for the named input leaves of step-tagged tiers, the book's x(1), x(2), ...;
        else None). Edges get ``delay`` (joins two steps: child -> parent). Graph attribute
        ``layout="tree"``.
    """
    T = nx.DiGraph()
    T.graph.update(G.graph)
    T.graph.pop(MARK, None)
    T.graph["layout"] = "tree"
    tiers: dict[tuple, int] = {}
    count: dict[int, int] = {}
    leaves = 0
    for n in sorted(G, key=sort_key):
        d = G.nodes[n]
        key = tier_key(d)
        tier = position = leaf = None
        if key is not None:
            tier = tiers.setdefault(key, len(tiers))
            position = count.get(tier, 0)
            count[tier] = position + 1
            if d["kind"] in ("input", "const") and not G.in_degree(n):
                leaves += 1
                leaf = leaves
        T.add_node(n, **d, column=None, row=None, tier=tier, position=position, leaf=leaf)
    tl = timelines(G)
    for u, v, d in sorted(G.edges(data=True), key=lambda e: (sort_key(e[1]), sort_key(e[0]))):
        T.add_edge(u, v, **d, delay=is_delay(G, u, v, tl))
    return T


def tree_figure(T: nx.DiGraph, level: str, grads: bool = False, note: str = "") -> Figure:
    """Draw a `tree_graph` bottom-up: one rank per tier, leaves in order, labelled edges.

    Parameters
    ----------
    T : networkx.DiGraph
        What :func:`tree_graph` returns.
    level : {"variable", "op"}
        The level ``T`` is at: edge labels name parameters at the variable level; at the op
        level parameters are nodes and only child -> parent edges say what they carry.
    grads : bool
        Overlay the gradient norms (as :func:`viz.unfolded`).
    note : str
        A line under the figure (why the op level was chosen), or "".

    Returns
    -------
    viz.render.Figure
        A ``graphviz.Digraph``; its ``.source`` depends only on ``T``.
    """
    scale = Scale.of(d for _, d in T.nodes(data=True)) if grads else None
    fig = new_figure("unfolded", note, scale, graph=T, ranksep="0.5")
    ids = {n: dot_id(n) for n in T}
    group: dict[Any, str] = {}  # a leaf and what it feeds in its step stand in one column
    for n in sorted(T, key=sort_key):
        if T.nodes[n]["leaf"] is not None:
            group[n] = f"leaf{T.nodes[n]['leaf']}"
            for v in sorted(T.successors(n), key=sort_key):
                if T.nodes[v]["tier"] is not None and T.nodes[v]["step"] == T.nodes[n]["step"]:
                    group.setdefault(v, group[n])
    tiers: dict[int, list] = {}
    params: list = []
    for n in sorted(T, key=sort_key):
        d = T.nodes[n]
        if d["tier"] is not None:
            tiers.setdefault(d["tier"], []).append(n)
        elif d["kind"] == "param":
            params.append(n)
        else:
            fig.node(ids[n], **_node_view(T, n, level, scale, group.get(n)))
    if params:  # op level: the shared weights in one row under the leaves, as in the columns
        with fig.subgraph(name="params") as sub:
            sub.attr(rank="source")
            for n in params:
                sub.node(ids[n], **_node_view(T, n, level, scale, None))
    for tier in sorted(tiers):
        members = sorted(tiers[tier], key=lambda n: T.nodes[n]["position"])
        with fig.subgraph(name=f"tier{tier}") as sub:
            sub.attr(rank="same")
            for n in members:
                sub.node(ids[n], **_node_view(T, n, level, scale, group.get(n)))
            if T.nodes[members[0]]["leaf"] is None:
                continue  # the leaves' order fixes the rest; chaining others pulls them askew
            for a, b in zip(members, members[1:]):  # the leaves in recording order
                sub.edge(ids[a], ids[b], style="invis")
    for u, v, d in sorted(T.edges(data=True), key=lambda e: (sort_key(e[1]), sort_key(e[0]))):
        label = d.get("label") or "" if level == "variable" or d["delay"] else ""
        attrs = edge_style(label, bool(d.get("detached")) or T.nodes[v]["op"] == "detach",
                           d.get("grad_norm"), scale, T.nodes[v])
        attrs["tooltip"] = edge_tooltip(_shown(T.nodes[u]), _shown(T.nodes[v]),
                                        d.get("label") or "", d.get("grad_norm"))
        if category(T.nodes[u]) == "target" and category(T.nodes[v]) == "loss":
            attrs["dir"] = "back"  # y above its loss, as in figs. 10.3 and 10.14
            fig.edge(ids[v], ids[u], **attrs)
        else:
            fig.edge(ids[u], ids[v], **attrs)
    return fig


def _node_view(T: nx.DiGraph, n: Any, level: str, scale: Scale | None,
               group: str | None) -> dict:
    """DOT attributes of a tree node: label, tooltip, column group, overlay."""
    d = T.nodes[n]
    shown = _shown(d)
    attrs = node_attrs(d, node_label(shown, level, shown["step"]), level)
    attrs["tooltip"] = node_tooltip(d, shown["step"])
    if group is not None:
        attrs["group"] = group
    return overlay(attrs, d, scale) if scale is not None else attrs


def _shown(d: dict) -> dict:
    """x(i) for the i-th leaf, the bare name for the states (a tree node has no time step)."""
    if d["leaf"] is not None:
        return dict(d, step=d["leaf"])
    if d["tier"] is not None:
        return dict(d, step=None)
    return d
