"""Variable level: contract the op graph to the textbook's picture of named tensors.

Flow: viz.schema.load -> **viz.levels** -> viz.fold / viz.unfolded / viz.folded.

Named tensors (x, h, o, L, ...) become the nodes; each chain of unnamed ops between two named
tensors collapses into one edge labelled by the parameters the chain read (W on h -> h, U on
x -> h). Parameters are not nodes at this level: they are the edge labels, as in the book.
Biases (parameters only ever added) stay in the edge's ``params`` but not in its ``label``.
Everything here is iterative: one backward sweep per named node over the unnamed ops feeding it.
"""
from __future__ import annotations

from typing import Any

import networkx as nx

from .names import prepare
from .gcpause import without_gc
from .schema import MARK, output_node, params_of, sort_key, tape_order

#: ops that add a parameter rather than multiply by it: their parameters are biases
ADDITIVE_OPS = frozenset({"add", "sub"})


def is_named(G: nx.DiGraph, n: Any, output: Any = None) -> bool:
    """A node the variable level keeps: a named non-parameter tensor, or the traced output."""
    d = G.nodes[n]
    if d["kind"] == "param":
        return False
    return bool(d["name"]) or n == output


@without_gc
def variable_level(graph: Any) -> nx.DiGraph:
    """Contract a recorded graph to its named tensors.

    Parameters
    ----------
    graph : networkx.DiGraph, object with ``to_networkx()``, or path
        A graph in the tinygraph schema (see :func:`viz.schema.load`).

    Returns
    -------
    networkx.DiGraph
        Nodes: the named tensors (and the traced output), with their original ids and
        attributes. Edges ``a -> v``: ``params`` (every parameter read on the op chains from a to
        v, in order of first use), ``label`` (the same without biases, comma-joined),
        ``detached`` (a ``detach`` op lies on the chain, so no
        gradient flows: truncated BPTT), ``grad_norm`` (the norm sent back along the last edge
        into ``v``, the largest when several chains meet).

    Examples
    --------
    >>> V = variable_level(G)                            # doctest: +SKIP
    >>> V.edges[h_prev, h_next]["label"]                 # doctest: +SKIP
    'W'
    """
    G = prepare(graph)
    if G.graph.get("level") == "variable":
        return G  # already contracted
    out = output_node(G)
    pexpr = param_expressions(G)
    keep = [n for n in tape_order(G) if is_named(G, n, out)]
    named = set(keep)
    H = nx.DiGraph()
    H.graph.update({k: v for k, v in G.graph.items() if not k.startswith("_")})
    H.graph["level"] = "variable"
    H.graph[MARK] = True  # its nodes keep the schema attributes: load() takes it as it is
    for n in keep:
        H.add_node(n, **G.nodes[n])
    if out is not None and out in H and not H.nodes[out]["name"]:
        H.nodes[out]["name"] = "L" if not H.nodes[out]["shape"] else H.nodes[out]["op"]
    for v in keep:
        for a, attrs in _incoming(G, v, named, pexpr).items():
            H.add_edge(a, v, **attrs)
    return H


def choose_level(graph: Any, level: str) -> tuple[nx.DiGraph, str, str]:
    """Load ``graph`` and pick the level to draw: (graph, level, note for the figure).

    A graph without named tensors has nothing to show at the variable level (only its output):
    it is drawn at the op level, and the note says how to get the textbook view.
    """
    if level not in ("variable", "op"):
        raise ValueError(f"level must be 'variable' or 'op', got {level!r}")
    G = prepare(graph)
    if level == "variable" and G.graph.get("level") != "variable" and not any(
            d["name"] and d["kind"] != "param" for _, d in G.nodes(data=True)):
        return G, "op", ("no named tensors, so every op is shown: name them "
                         "(tensor.named('h')) for the variable level")
    return G, level, ""


def param_expressions(G: nx.DiGraph) -> dict[Any, list[str]]:
    """Nodes computed from parameters alone (``W`` itself, ``W.T``) -> the parameter names.

    A chain reading ``h @ W.T`` reads W through a side branch; attributing the branch's
    parameters to the op that consumes it is what labels the h -> h edge with W.
    """
    found: dict[Any, list[str]] = {}
    for n in tape_order(G):
        d = G.nodes[n]
        if d["kind"] == "param":
            found[n] = [d["name"]] if d["name"] else []
            continue
        preds = list(G.predecessors(n))
        if d["kind"] != "op" or d["name"] or not preds:
            continue
        if all(p in found or (G.nodes[p]["kind"] == "const" and not G.in_degree(p))
               for p in preds) and any(p in found for p in preds):
            names = list(params_of(d))
            for p in preds:
                names += [x for x in found.get(p, []) if x not in names]
            found[n] = names
    return found


def _param_roles(G: nx.DiGraph, n: Any, pexpr: dict) -> list[tuple[str, bool]]:
    """(parameter name, is-bias) for what op ``n`` reads: its ``param`` attribute, param leaves
    and parameter expressions among its inputs."""
    d = G._node[n]  # networkx's own dicts: the views' lookups cost more than these loops
    names = list(params_of(d))
    for p in G._pred[n]:
        for name in pexpr.get(p, ()):
            if name not in names:
                names.append(name)
    bias = d["op"] in ADDITIVE_OPS
    return [(name, bias) for name in names]


def _incoming(G: nx.DiGraph, v: Any, named: set, pexpr: dict) -> dict[Any, dict]:
    """Named sources of ``v`` through unnamed ops, with the parameters each chain read."""
    # region: unnamed non-param ops reached backward from v without crossing a named tensor
    region: list[Any] = []
    seen = {v}
    stack = [v]
    pred, node = G._pred, G._node  # networkx's own dicts: the views' lookups cost more
    while stack:
        n = stack.pop()
        for p in pred[n]:
            if p in seen:
                continue
            seen.add(p)
            pd = node[p]
            if pd["kind"] == "param" or p in named:
                continue
            region.append(p)
            stack.append(p)
    region_set = set(region)
    region.sort(key=sort_key)  # tape order = topological order

    def sources_of(start: Any) -> set:
        """Named non-param tensors that reach ``start`` through the region."""
        found, todo, seen_local = set(), [start], {start}
        while todo:
            n = todo.pop()
            for p in pred[n]:
                if p in seen_local:
                    continue
                seen_local.add(p)
                if p in region_set:
                    todo.append(p)
                elif p in named:
                    found.add(p)
        return found

    result: dict[Any, dict] = {}
    all_sources = sources_of(v)
    for a in sorted(all_sources, key=sort_key):
        result[a] = {"params": [], "weights": set(), "detached": False}
    # an op lies on a path a -> v exactly when a reaches it (every region op reaches v); only
    # ops that read parameters or cut the gradient matter, so only they pay for a search
    for r in region + [v]:
        roles = _param_roles(G, r, pexpr)
        is_detach = node[r]["op"] == "detach"
        if not roles and not is_detach:
            continue
        for a in all_sources if r == v else sources_of(r):
            e = result[a]
            e["detached"] = e["detached"] or is_detach
            for name, bias in roles:
                if name not in e["params"]:
                    e["params"].append(name)
                if not bias:
                    e["weights"].add(name)
    for a, e in result.items():
        weights = e.pop("weights")
        e["label"] = ",".join(p for p in e["params"] if p in weights)
        e["grad_norm"] = None if e["detached"] else _edge_grad(G, a, v, region_set)
    return result


def _edge_grad(G: nx.DiGraph, a: Any, v: Any, region: set) -> float | None:
    """Gradient norm sent back to ``a`` along its chains into ``v``.

    The edges from ``a`` into the chain (every region op reaches v) carry exactly what flows
    back to ``a`` through it; several entries add up (their norms: an upper bound).
    """
    total = None
    for r, d in G._succ[a].items():
        if r == v or r in region:
            g = d["grad_norm"]
            if g is None:
                return None
            total = g if total is None else total + g
    return total
