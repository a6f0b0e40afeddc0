"""Folding: the recorded unfolded graph -> the folded graph (recurrence as one loop).

Flow: viz.schema / viz.levels -> **viz.fold** -> viz.folded (drawing), viz.grads (per-role stats).

The folded graph is a quotient of the unfolded one. Nodes that play the same *role* at different
time steps merge: same scope, op, kind, name and parameters, and the same position among such
nodes within their step (the 2nd matmul reading W in step 7 is the 2nd in step 8; a step made of
unlinked pieces, like the nodes of one height of a tree, counts per piece). Nodes outside
any step are their own role. Edges between two steps of one timeline become *delay* edges (the
book's black square), labelled with the parameter they carry. A role reading itself from the step
before is a self-loop. ``networkx.quotient_graph`` drops edges inside a block, so the contraction
is built here, in one pass over nodes and one over edges.
"""
from __future__ import annotations

import math
from typing import Any

import networkx as nx

from .levels import param_expressions, variable_level
from .names import prepare
from .gcpause import without_gc
from .schema import MARK, edge_order, is_finite, params_of, sort_key, tape_order
from .timeline import is_delay, timelines


def role_keys(G: nx.DiGraph) -> dict[Any, tuple]:
    """Map each node to its role key (equal keys merge when folding).

    Step-tagged nodes: (scope, op, kind, name, param, position among such nodes in the step's
    piece, see `step_pieces`).
    Outside steps: named input leaves of one scope merge (the leaves of a recursive net), and so
    do chains of identical ops feeding each other (``total = total + L`` written at top level);
    every other node is its own role.
    """
    counters: dict[tuple, int] = {}
    keys: dict[Any, tuple] = {}
    chain = nx.utils.UnionFind()  # over untagged ops, for the chains
    untagged_ops = []
    piece = step_pieces(G)
    for n in tape_order(G):
        d = G.nodes[n]
        base = (d["scope"], d["op"], d["kind"], d["name"] or "", d["param"] or "")
        if d["step"] is not None:
            k = counters.get((piece[n],) + base, 0)
            counters[(piece[n],) + base] = k + 1
            keys[n] = ("role",) + base + (k,)
        elif d["kind"] in ("input", "const") and d["name"] and not G.in_degree(n):
            keys[n] = ("leaf",) + base
        else:
            keys[n] = ("node", sort_key(n))
            if d["kind"] == "op":
                untagged_ops.append(n)
    ops = set(untagged_ops)
    for u, v in G.edges:
        if u in ops and v in ops and keys_equal_base(G, u, v):
            chain.union(u, v)
    for block in chain.to_sets():
        first = min(block, key=sort_key)
        for n in block:
            keys[n] = keys[first]
    _totals_join_their_terms(G, keys)
    return keys


def _totals_join_their_terms(G: nx.DiGraph, keys: dict) -> None:
    """The total L = sum of the L(t) is the book's one L: it joins the role of its terms.

    A named node outside steps whose inputs are all one step-tagged role of its own name (at
    the variable level, the sum's chain is already contracted) is that role's total.
    """
    for n in tape_order(G):
        d = G.nodes[n]
        if d["step"] is not None or not d["name"] or not G.in_degree(n):
            continue
        preds = list(G.predecessors(n))
        roles = {keys[p] for p in preds}
        if len(roles) == 1 and all(G.nodes[p]["name"] == d["name"] and
                                   G.nodes[p]["step"] is not None for p in preds):
            keys[n] = roles.pop()


def step_pieces(G: nx.DiGraph) -> dict[Any, Any]:
    """Map each step-tagged node to its *piece*: its connected part of its step's subgraph.

    A recurrent step is one piece (x(t), h(t), o(t), L(t) are linked within the step), so a
    node's position in its piece is its position in its step. A recursive net recorded per
    node has one piece per tree node at each height (each composition reads only the nodes
    below it): positions counted per piece make every node's h the same role, so the folded
    graph does not depend on the tree. The piece id is its first node (tape order).
    """
    node = G._node
    parent = {n: n for n in tape_order(G) if node[n]["step"] is not None}
    key = (lambda n: n) if all(type(n) is int for n in parent) else sort_key

    def find(x: Any) -> Any:  # iterative, with path compression
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for u, v in G.edges:
        if u in parent and v in parent and node[u]["step"] == node[v]["step"]:
            ru, rv = find(u), find(v)
            if ru != rv:  # the root stays the block's first node in tape order
                if key(rv) < key(ru):
                    ru, rv = rv, ru
                parent[rv] = ru
    return {n: find(n) for n in parent}


def keys_equal_base(G: nx.DiGraph, u: Any, v: Any) -> bool:
    a, b = G.nodes[u], G.nodes[v]
    return all(a[k] == b[k] for k in ("scope", "op", "kind", "name", "param"))


@without_gc
def fold(graph: Any, level: str = "variable") -> nx.DiGraph:
    """Fold a recorded graph: one node per role, delay edges for recurrence.

    Parameters
    ----------
    graph : networkx.DiGraph, object with ``to_networkx()``, or path
        A recorded (unfolded) graph in the tinygraph schema.
    level : {"variable", "op"}
        Fold the named-tensor contraction (the book's view) or every op.

    Returns
    -------
    networkx.DiGraph
        Node ids ``0..m-1`` in order of each role's first appearance. Node attributes: the
        schema attributes of the role's first member, plus ``members`` (original ids, tape
        order), ``count``, ``steps`` (sorted distinct steps, empty outside steps),
        ``grad_stats`` (``(min, median, max)`` of the finite gradient norms, or None) and
        ``nonfinite`` (how many members have a NaN/inf gradient norm), ``timeline`` (the time
        axis of its steps, see `viz.timeline`, or None), and ``initial`` (the
        step difference) on a one-off leaf that starts a loop, like h(0). Edge attributes:
        ``same`` / ``delay`` (how many unfolded edges within a step / across steps it stands
        for), ``lags`` (sorted step differences of the delay edges: 1 forward, -1 backward),
        ``label`` (the parameters it carries, comma-joined), ``detached`` (every member edge is
        cut by ``detach``), ``grad_stats``.

    Examples
    --------
    >>> F = fold(G)                                                   # doctest: +SKIP
    >>> [F.nodes[n]["name"] for n in nx.nodes_with_selfloops(F)]      # doctest: +SKIP
    ['h']
    """
    if level not in ("variable", "op"):
        raise ValueError(f"fold: level must be 'variable' or 'op', got {level!r}")
    G = variable_level(graph) if level == "variable" else prepare(graph)
    tl = timelines(G)
    keys = role_keys(G)
    pexpr = param_expressions(G) if level == "op" else {}
    role_id: dict[tuple, int] = {}
    F = nx.DiGraph()
    F.graph.update(G.graph)
    F.graph.pop(MARK, None)  # a folded graph is not a recorded one
    F.graph["level"] = level
    F.graph["folded"] = True
    for n in tape_order(G):
        key = keys[n]
        r = role_id.get(key)
        if r is None:
            r = role_id[key] = len(role_id)
            F.add_node(r, **G.nodes[n])
            F.nodes[r].update(members=[], steps=set(), _grads=[], timeline=None)
        fd = F.nodes[r]
        fd["members"].append(n)
        if G.nodes[n]["step"] is not None:
            fd["steps"].add(G.nodes[n]["step"])
            fd["timeline"] = tl.get(G.nodes[n]["scope"])
        fd["_grads"].append(G.nodes[n]["grad_norm"])
    for r, fd in F.nodes(data=True):
        fd["count"] = len(fd["members"])
        fd["steps"] = sorted(fd["steps"])
        fd["grad_stats"], fd["nonfinite"] = _stats(fd.pop("_grads"))
    for u, v, d in edge_order(G):
        ru, rv = role_id[keys[u]], role_id[keys[v]]
        if ru == rv and not is_delay(G, u, v, tl):
            continue  # inside one role (the L(t) summed into the total L): no loop to draw
        if not F.has_edge(ru, rv):
            F.add_edge(ru, rv, same=0, delay=0, lags=set(), label=[], _cut=0, _grads=[])
        fe = F.edges[ru, rv]
        delay = is_delay(G, u, v, tl)
        if delay and F.nodes[ru]["count"] == 1 and not G.in_degree(u):
            # a one-off leaf feeding step 1 from step 0 is the initial state h(0), not a loop
            delay = False
            F.nodes[ru]["initial"] = G.nodes[v]["step"] - G.nodes[u]["step"]
            if level == "op":
                fe["label"] += [p for p in param_reads(G, v, pexpr) if p not in fe["label"]]
        if delay:
            fe["delay"] += 1
            fe["lags"].add(G.nodes[v]["step"] - G.nodes[u]["step"])
        else:
            fe["same"] += 1
        for p in _edge_params(G, u, v, d, delay, level, pexpr):
            if p not in fe["label"]:
                fe["label"].append(p)
        fe["_cut"] += bool(d.get("detached")) or G.nodes[v]["op"] == "detach"
        fe["_grads"].append(d.get("grad_norm"))
    for _, _, fe in F.edges(data=True):
        fe["lags"] = sorted(fe["lags"])
        fe["label"] = ",".join(fe["label"])
        fe["detached"] = fe.pop("_cut") == fe["same"] + fe["delay"]
        fe["grad_stats"], fe["nonfinite"] = _stats(fe.pop("_grads"))
    return F


def param_reads(G: nx.DiGraph, v: Any, pexpr: dict) -> list[str]:
    """Parameters op ``v`` reads: directly, or through a parameter expression like W.T."""
    names = list(params_of(G.nodes[v]))
    for p in G.predecessors(v):
        names += [x for x in pexpr.get(p, []) if x not in names]
    return names


def _edge_params(G: nx.DiGraph, u: Any, v: Any, d: dict, delay: bool, level: str,
                 pexpr: dict) -> list[str]:
    if level == "variable":
        return [p for p in (d.get("label") or "").split(",") if p]
    # op level: parameter nodes are drawn, so only a delay edge names what it carries
    if delay and G.nodes[u]["kind"] != "param":
        return param_reads(G, v, pexpr)
    return []


def _stats(values: list) -> tuple[tuple[float, float, float] | None, int]:
    """(min, median, max) of the finite values, and the count of NaN/inf ones."""
    finite = sorted(x for x in values if is_finite(x))
    bad = sum(1 for x in values if isinstance(x, float) and not math.isfinite(x))
    if not finite:
        return None, bad
    mid = len(finite) // 2
    median = finite[mid] if len(finite) % 2 else 0.5 * (finite[mid - 1] + finite[mid])
    return (finite[0], median, finite[-1]), bad


def roles(graph: Any, level: str = "variable") -> dict[Any, int]:
    """Map each node of the (level-contracted) recorded graph to its folded role id."""
    G = variable_level(graph) if level == "variable" else prepare(graph)
    F = fold(G, level="op")  # G is already at the wanted level
    return {m: r for r, d in F.nodes(data=True) for m in d["members"]}
