"""Per-step terms made outside ``tg.step``: each joins the one step it reads.

Flow: schema (``normalise``, after ``infer``) -> **join** -> levels, fold, views.

A partly annotated recording is common: ``tinygraph.nn`` tags every step of its loop, then the
user writes ``terms = [cross_entropy(out.o[t], y[:, t]).named("L") for t in ...]`` outside any
``tg.step``. Left untagged, those L's are drawn as T separate nodes outside every column and
the folded view grows with T. Here a group of two or more untagged op nodes sharing one name
and scope, each of which reads (through untagged unnamed ops only) tensors of exactly one
step, a different step for each, joins those steps, together with the unnamed ops between
them and their step. A node reading several steps (a sum over time, the total loss) is left
where it is; so is everything in a graph without step tags (``infer`` handles those).
"""
from __future__ import annotations

from typing import Any

import networkx as nx

NOTE_JOINED = ("{n} untagged '{name}' nodes each read one step and were drawn in it: make "
               "them inside tg.step(t) to say so yourself")


def join_steps(G: nx.DiGraph) -> nx.DiGraph:
    """Tag per-step terms recorded outside ``tg.step`` with the step they read, in place.

    Parameters
    ----------
    G : networkx.DiGraph
        A normalised graph (every schema attribute present).

    Returns
    -------
    networkx.DiGraph
        ``G``; when something joined, ``G.graph["inference_note"]`` says what (one line).

    Examples
    --------
    >>> G = join_steps(G)                      # doctest: +SKIP
    >>> G.graph.get("inference_note")          # doctest: +SKIP
    "20 untagged 'L' nodes each read one step and were drawn in it: ..."
    """
    nodes = G.nodes
    if not any(d["step"] is not None and d["kind"] == "op" for _, d in G.nodes(data=True)):
        return G
    groups: dict[tuple, list] = {}
    for n, d in G.nodes(data=True):
        if d["kind"] == "op" and d["step"] is None and d["name"]:
            groups.setdefault((d["scope"], d["name"]), []).append(n)
    notes = []
    for (_, name), members in sorted(groups.items(), key=lambda kv: kv[0]):
        found = []
        for n in members:
            step, chain = _one_step(G, n)
            if step is not None:
                found.append((n, step, chain))
        steps = [s for _, s, _ in found]
        if len(found) < 2 or len(set(steps)) != len(steps):
            continue
        for n, step, chain in found:
            for m in chain:
                nodes[m]["step"] = step
        notes.append(NOTE_JOINED.format(n=len(found), name=name))
    if notes:
        old = G.graph.get("inference_note")
        G.graph["inference_note"] = "; ".join(([old] if old else []) + notes)
    return G


def _one_step(G: nx.DiGraph, n: Any) -> tuple[int | None, list]:
    """(the one step `n` reads, the untagged op nodes from there to `n`), or (None, [])."""
    nodes, pred = G.nodes, G.pred
    steps: set[int] = set()
    chain, stack, seen = [n], [n], {n}
    while stack:  # iterative: a long chain of untagged ops must not reach the recursion limit
        v = stack.pop()
        for u in pred[v]:
            if u in seen:
                continue
            seen.add(u)
            d = nodes[u]
            if d["step"] is not None:
                steps.add(d["step"])
            elif d["kind"] == "op":
                if d["name"]:           # another named variable: not a per-step term's chain
                    return None, []
                chain.append(u)
                stack.append(u)
        if len(steps) > 1:
            return None, []
    return (steps.pop(), chain) if len(steps) == 1 else (None, [])
