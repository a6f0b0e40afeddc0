"""Time axes of a recorded graph: which steps line up, which edges are delays, what to elide.

Flow: viz.schema / viz.levels -> **viz.timeline** -> viz.fold (delay edges), viz.unfolded (columns).

A *timeline* is a set of scopes that share one time axis. Scopes start apart and are joined when
edges link their nodes at the same step, at two steps or more (the forward and backward RNN of a
bidirectional net both feed o(t) at every t, so they share one axis; an encoder and its decoder
only meet through the context C, so the decoder's steps come after the encoder's). An edge between two
steps of one timeline is a delay edge: the book's black square.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import networkx as nx

from .schema import sort_key, tape_order


def timelines(G: nx.DiGraph) -> dict[str, int]:
    """Map each scope holding step-tagged nodes to its timeline id (0, 1, ... in tape order)."""
    first: dict[str, Any] = {}
    for n in tape_order(G):
        d = G.nodes[n]
        if d["step"] is not None and d["scope"] not in first:
            first[d["scope"]] = sort_key(n)
    uf = nx.utils.UnionFind(first)
    steps_of: dict[str, set] = {}
    links: dict[tuple[str, str], set] = {}
    for n, d in G.nodes(data=True):
        if d["step"] is not None:
            steps_of.setdefault(d["scope"], set()).add(d["step"])
    reads: set[tuple[str, str]] = set()  # (reader scope, source scope) along same-step edges
    for u, v in G.edges:
        du, dv = G.nodes[u], G.nodes[v]
        if du["step"] is not None and du["step"] == dv["step"] and du["scope"] != dv["scope"]:
            pair = tuple(sorted((du["scope"], dv["scope"])))
            links.setdefault(pair, set()).add(du["step"])
            reads.add((dv["scope"], du["scope"]))
    for (a, b), at in sorted(links.items()):
        # one shared step can be a coincidence (the context C made at the encoder's step 9,
        # read by the decoder's step 9); two or more cannot
        if len(at) < 2 and min(len(steps_of[a]), len(steps_of[b])) > 1:
            continue
        # a scope of a single step joins the timeline it reads from (C joins the encoder whose
        # last state it copies), never one that merely reads it (the decoder reading C)
        single = [s for s in (a, b) if len(steps_of[s]) == 1]
        if len(at) < 2 and single and not any((s, b if s == a else a) in reads for s in single):
            continue
        uf.union(a, b)
    lines = sorted(uf.to_sets(), key=lambda block: min(first[s] for s in block))
    return {s: i for i, block in enumerate(lines) for s in block}


def is_delay(G: nx.DiGraph, u: Any, v: Any, tl: dict[str, int]) -> bool:
    """True when edge u -> v joins two different steps of one timeline (a recurrent edge)."""
    su, sv = G.nodes[u]["step"], G.nodes[v]["step"]
    if su is None or sv is None or su == sv:
        return False
    return tl.get(G.nodes[u]["scope"]) == tl.get(G.nodes[v]["scope"])


@dataclass(frozen=True)
class Column:
    """One column of the unfolded view: a step of a timeline, or an elision of many steps."""

    index: int
    timeline: int
    step: int | None  # None for an elision column
    hidden: tuple[int, int] | None = None  # (first, last) step hidden, for an elision
    n_hidden: int = 0


def columns(G: nx.DiGraph, max_steps: int | None = None, tl: dict[str, int] | None = None
            ) -> tuple[dict[Any, int], list[Column]]:
    """Assign each step-tagged node a column; timelines follow each other left to right.

    Parameters
    ----------
    G : networkx.DiGraph
        A normalised graph (op or variable level).
    max_steps : int or None
        Show at most this many steps per timeline: the first ``ceil(k/2)`` and last
        ``floor(k/2)``, with one elision column between. ``None`` shows all. An elision column
        is as wide as a step, so a timeline one step too long is shown whole (an initial state
        h(0) at step 0 then does not cost a hidden step).
    tl : dict, optional
        ``timelines(G)`` when the caller has it already (a pass over every node and edge).

    Returns
    -------
    (dict, list of Column)
        Node -> column index (nodes of hidden steps map to their elision column), and the
        columns in order.
    """
    tl = timelines(G) if tl is None else tl
    steps: dict[int, set[int]] = {}
    for _, d in G.nodes(data=True):
        if d["step"] is not None:
            steps.setdefault(tl[d["scope"]], set()).add(d["step"])
    cols: list[Column] = []
    where: dict[tuple[int, int], int] = {}
    for line in sorted(steps):
        ordered = sorted(steps[line])
        if max_steps is not None and max_steps >= 1 and len(ordered) > max_steps + 1:
            head = ordered[: (max_steps + 1) // 2]
            tail = ordered[len(ordered) - max_steps // 2:] if max_steps // 2 else []
            hidden = ordered[len(head): len(ordered) - len(tail)]
        else:
            head, tail, hidden = ordered, [], []
        for s in head:
            where[line, s] = len(cols)
            cols.append(Column(len(cols), line, s))
        if hidden:
            idx = len(cols)
            cols.append(Column(idx, line, None, (hidden[0], hidden[-1]), len(hidden)))
            for s in hidden:
                where[line, s] = idx
        for s in tail:
            where[line, s] = len(cols)
            cols.append(Column(len(cols), line, s))
    col_of = {n: where[tl[d["scope"]], d["step"]] for n, d in G.nodes(data=True)
              if d["step"] is not None}
    return col_of, cols
