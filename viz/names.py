"""The label rule: one variable drawn once, and no two different things under one label.

Flow: viz.schema.load -> **viz.names** -> viz.levels / viz.fold / the views (and the charts, so
figures and charts say the same names).

Two passes over a loaded graph, both before any contraction:

1. *One variable, one node.* A target y(t) and the same y(t) fed back as the next step's input
   (teacher forcing, a decoder reading its previous output) are recorded as two input leaves
   with the same name, step, shape and dtype, in different scopes. They are the same variable,
   so they merge into one node (the deepest scope is kept, as the model reads it there): the
   book draws y(t) once, with an arrow to L(t) and one to h(t+1).
2. *Distinct labels.* Two different parameters never share a label and two different variables
   never share a name: parameters named alike in different scopes (the encoder's and the
   decoder's W), and named tensors alike in different scopes (two stacked layers' h), get a
   subscript from the first scope component where they differ (``layer1``/``layer2`` -> 1/2,
   ``encoder``/``decoder`` -> enc/dec). The subscript is written ``h_enc``: viz.style draws
   the part after ``_`` as a subscript. Ops' ``param`` attributes follow their parameter.

Both passes are idempotent and linear in the graph.
"""
from __future__ import annotations

import re
from typing import Any

import networkx as nx

from .schema import load, params_of, sort_key

DONE = "_viz_names"  # graph attribute: the passes have run


def prepare(graph: Any) -> nx.DiGraph:
    """:func:`viz.schema.load`, then :func:`distinct`, never changing the caller's graph."""
    G = load(graph)
    if G.graph.get(DONE):
        return G
    if G is graph:  # load() hands back graphs viz made itself: work on a copy
        G = G.copy()
    return distinct(G)


def distinct(G: nx.DiGraph) -> nx.DiGraph:
    """Apply both passes to a loaded graph, in place; returns it (no-op the second time).

    Parameters
    ----------
    G : networkx.DiGraph
        A graph from :func:`viz.schema.load` (a copy the caller owns).

    Returns
    -------
    networkx.DiGraph
        ``G``, with repeated input leaves merged and ambiguous names subscripted.

    Examples
    --------
    >>> G = distinct(load(graph))                                    # doctest: +SKIP
    >>> sorted({d["name"] for _, d in G.nodes(data=True) if d["kind"] == "param"})  # doctest: +SKIP
    ['U_dec', 'U_enc', 'V', 'W_dec', 'W_enc', ...]
    """
    if G.graph.get(DONE):
        return G
    merge_repeated_inputs(G)
    _subscript_params(G)
    _subscript_variables(G)
    G.graph[DONE] = True
    return G


def merge_repeated_inputs(G: nx.DiGraph) -> None:
    """Merge input leaves that are one variable recorded twice (see module doc), in place."""
    groups: dict[tuple, list] = {}
    for n in sorted(G, key=sort_key):
        d = G.nodes[n]
        if d["kind"] == "input" and d["name"] and d["step"] is not None and not G.in_degree(n):
            key = (d["name"], d["step"], tuple(d["shape"] or ()), d["dtype"])
            groups.setdefault(key, []).append(n)
    # one leaf per scope, in two scopes or more: a target and the same value fed back (several
    # leaves in one scope are different variables, like the leaves x(1), x(2) of a tree)
    groups = {k: ns for k, ns in groups.items()
              if len({G.nodes[n]["scope"] for n in ns}) == len(ns) > 1}
    uf = nx.utils.UnionFind()
    for ns in groups.values():
        uf.union(*[(G.nodes[n]["name"], G.nodes[n]["scope"]) for n in ns])
    # one scope per merged variable, for every step (also the steps only one side records)
    home = {}
    for block in uf.to_sets():
        scope = max((s for _, s in block), key=lambda s: (s.count("/") + bool(s), s))
        for member in block:
            home[member] = scope
    for n, d in G.nodes(data=True):
        if d["kind"] == "input" and (d["name"], d["scope"]) in home:
            d["scope"] = home[d["name"], d["scope"]]
    for ns in groups.values():
        keep, rest = ns[0], ns[1:]
        if len({G.nodes[n]["scope"] for n in ns}) > 1:
            continue  # not one variable after all
        for n in rest:
            for _, v, e in list(G.out_edges(n, data=True)):
                if not G.has_edge(keep, v):
                    G.add_edge(keep, v, **e)
            G.remove_node(n)


def scope_titles(scopes: list[str]) -> dict[str, str]:
    """Map each scope to the first path component where the scopes differ ("" when none).

    ``seq2seq/encoder/cell``, ``seq2seq/decoder`` -> ``encoder``, ``decoder``.
    """
    parts = {s: s.split("/") if s else [] for s in scopes}
    depth = 0
    while len({tuple(p[:depth + 1]) for p in parts.values()}) == 1 and \
            all(len(p) > depth for p in parts.values()):
        depth += 1
    return {s: (p[depth] if len(p) > depth else "") for s, p in parts.items()}


def subscript(scopes: list[str]) -> dict[str, str]:
    """Map each scope to the subscript telling it apart from the others ("" for none).

    The first path component where the scopes differ names them; components differing only
    in a trailing number give the number (layer1, layer2 -> 1, 2); otherwise the first three
    letters of longer names when they stay distinct (encoder, decoder -> enc, dec; cell stays
    cell), else the whole component.
    """
    comp = scope_titles(scopes)
    m = {s: re.fullmatch(r"(.*?)(\d+)", c) for s, c in comp.items()}
    if all(m.values()) and len({x.group(1) for x in m.values()}) == 1:
        return {s: x.group(2) for s, x in m.items()}
    short = {s: c if len(c) <= 4 else c[:3] for s, c in comp.items()}
    if len(set(short.values())) == len(short):
        return short
    return comp


def _with_sub(name: str, sub: str) -> str:
    return f"{name}_{sub}" if sub else name


def _subscript_params(G: nx.DiGraph) -> None:
    by_name: dict[str, list] = {}
    for n in sorted(G, key=sort_key):
        d = G.nodes[n]
        if d["kind"] == "param" and d["name"]:
            by_name.setdefault(d["name"], []).append(n)
    renamed: dict[str, dict[Any, str]] = {}
    for name, ns in by_name.items():
        if len(ns) < 2:
            continue
        scopes = [G.nodes[n]["scope"] for n in ns]
        if len(set(scopes)) < len(scopes):  # same scope, same name: tell them apart by order
            new = {n: _with_sub(name, str(i + 1)) for i, n in enumerate(ns)}
        else:
            sub = subscript(scopes)
            new = {n: _with_sub(name, sub[G.nodes[n]["scope"]]) for n in ns}
        renamed[name] = new
        for n, label in new.items():
            G.nodes[n]["name"] = label
    if not renamed:
        return
    for n in sorted(G, key=sort_key):
        d = G.nodes[n]
        if d["kind"] != "op" or not d["param"]:
            continue
        names = [_param_label(G, n, p, renamed[p]) if p in renamed else p for p in params_of(d)]
        d["param"] = ",".join(names)


def _param_label(G: nx.DiGraph, n: Any, name: str, new: dict[Any, str]) -> str:
    """The new label of parameter ``name`` read by op ``n``: an input of n, else the one whose
    scope shares the longest prefix with n's."""
    for p in G.predecessors(n):
        if p in new:
            return new[p]
    scope = G.nodes[n]["scope"].split("/")

    def shared(p: Any) -> int:
        k = 0
        for a, b in zip(scope, G.nodes[p]["scope"].split("/")):
            if a != b:
                break
            k += 1
        return k
    return new[max(new, key=shared)]  # ties: the first recorded


def _subscript_variables(G: nx.DiGraph) -> None:
    """Step-tagged tensors named alike in different scopes *at the same steps* get subscripts.

    Two layers' h at every step are two variables (h_1, h_2). The start token y(0) in the
    model's scope and the targets y(1..τ) outside it never share a step: one sequence y, one
    name. A named node outside the steps keeps its name: it is a summary of its name's steps
    (the total L over the per-step L(t)), the same variable in the book.
    """
    steps: dict[str, dict[str, set]] = {}
    for n in sorted(G, key=sort_key):
        d = G.nodes[n]
        if d["kind"] != "param" and d["name"] and d["step"] is not None:
            steps.setdefault(d["name"], {}).setdefault(d["scope"], set()).add(d["step"])
    for name, by_scope in steps.items():
        scopes = list(by_scope)
        clash = sorted({s for i, a in enumerate(scopes) for b in scopes[i + 1:]
                        if by_scope[a] & by_scope[b] for s in (a, b)}, key=scopes.index)
        if not clash:
            continue
        sub = subscript(clash)
        for n, d in G.nodes(data=True):
            if d["kind"] != "param" and d["name"] == name and d["scope"] in sub:
                d["name"] = _with_sub(name, sub[d["scope"]])
