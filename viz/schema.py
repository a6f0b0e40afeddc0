"""Load, check and normalise the exported graph: the door into `viz`.

Flow: tinygraph export (networkx.DiGraph / JSON) -> **viz.schema** -> levels / fold / views.

Everything in `viz` starts from :func:`load`, which accepts a ``networkx.DiGraph`` in the schema
of ``docs/CONTRACT.md``, any object with a ``to_networkx()`` method, or a path to a saved JSON
graph (networkx node-link format). It returns a fresh copy with every attribute present, so the
caller's graph is never modified and the rest of the package can index attributes directly.
"""
from __future__ import annotations

import functools
import json
import math
import os
from typing import Any

import networkx as nx

from .infer import infer

SCHEMA_VERSION = 1
KINDS = ("param", "input", "const", "op")

#: node attribute -> default filled in when absent (the schema says "always present")
NODE_DEFAULTS: dict[str, Any] = {
    "name": None, "shape": None, "dtype": None, "scope": "", "step": None, "param": None,
    "requires_grad": True, "src": None, "value_norm": None, "grad_norm": None,
}
EDGE_DEFAULTS: dict[str, Any] = {"arg": 0, "args": None, "grad_norm": None}


MARK = "_viz_normalised"


class SchemaError(ValueError):
    """The input graph does not follow the tinygraph graph schema (docs/CONTRACT.md)."""


def load(graph: Any) -> nx.DiGraph:
    """Return a normalised copy of ``graph`` in the tinygraph schema.

    Parameters
    ----------
    graph : networkx.DiGraph, object with ``to_networkx()``, str or os.PathLike
        The recorded graph, or a path to a JSON file written with
        ``networkx.node_link_data(G, edges="edges")`` (what ``tg.Graph.save`` writes).

    Returns
    -------
    networkx.DiGraph
        A copy with every schema attribute present; parameter leaves and leaves shared by
        several steps get ``step=None`` (a leaf's tag is only where it was first used).

    Raises
    ------
    TypeError
        If ``graph`` is none of the accepted types.
    SchemaError
        If a node lacks ``op``/``kind``, has an unknown kind, or the graph has a cycle.

    Examples
    --------
    >>> import networkx as nx
    >>> G = nx.DiGraph(); G.add_node(0, op="leaf", kind="input", name="x")
    >>> load(G).nodes[0]["step"] is None
    True
    """
    if isinstance(graph, (str, os.PathLike)):
        G = read_json(graph)
    elif isinstance(graph, nx.DiGraph):
        G = graph
    elif hasattr(graph, "to_networkx"):
        G = graph.to_networkx()
        if not isinstance(G, nx.DiGraph):
            raise TypeError(f"{type(graph).__name__}.to_networkx() returned "
                            f"{type(G).__name__}, expected networkx.DiGraph")
    else:
        raise TypeError(f"viz expects a networkx.DiGraph, an object with .to_networkx(), or a "
                        f"path to a saved JSON graph; got {type(graph).__name__}")
    if isinstance(G, nx.MultiDiGraph):
        raise TypeError("viz expects a networkx.DiGraph, got a MultiDiGraph; "
                        "merge parallel edges into one edge with an `args` list")
    if G.graph.get(MARK) is True:  # made by viz itself: already checked and normalised
        return G
    return normalise(G)


def read_json(path: str | os.PathLike) -> nx.DiGraph:
    """Read a graph saved as networkx node-link JSON (``edges="edges"``)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise FileNotFoundError(f"graph file not found: {os.fspath(path)!r}") from None
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{os.fspath(path)!r} is not valid JSON ({exc}); expected a graph "
                          f"saved with networkx.node_link_data(G, edges='edges')") from None
    if not isinstance(data, dict) or "nodes" not in data:
        raise SchemaError(f"{os.fspath(path)!r} is not a node-link graph: no 'nodes' key")
    if "edges" not in data and "links" in data:  # older networkx wrote "links"
        data = dict(data, edges=data.pop("links"))
    data = dict(data, directed=True, multigraph=False)
    G = nx.node_link_graph(data, edges="edges")
    G.graph.pop(MARK, None)  # a file is always checked again
    return G


def save_json(graph: Any, path: str | os.PathLike) -> None:
    """Write ``graph`` as node-link JSON that :func:`load` (and ``tg.Graph.load``) read back.

    Parameters
    ----------
    graph : networkx.DiGraph, object with ``to_networkx()``, or path
        A graph in the schema (written as given when it is a DiGraph).
    path : str or os.PathLike
        Where to write; NaN and inf gradient norms are kept (JSON ``NaN`` / ``Infinity``).

    Examples
    --------
    >>> save_json(G, "elman.json"); load("elman.json")       # doctest: +SKIP
    """
    G = graph if isinstance(graph, nx.DiGraph) else load(graph)
    data = nx.node_link_data(G, edges="edges")
    data["graph"] = {k: v for k, v in data["graph"].items() if not str(k).startswith("_")}
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, default=_json_default, allow_nan=True)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def normalise(G: nx.DiGraph) -> nx.DiGraph:
    """Check the schema and return a copy with defaults filled in (see :func:`load`)."""
    nodes = []
    for n in sorted(G.nodes, key=_sort_key):
        attrs = G.nodes[n]
        if "op" not in attrs or "kind" not in attrs:
            key = "op" if "op" not in attrs else "kind"
            raise SchemaError(f"node {n!r} has no {key!r} attribute; every node needs op and "
                              f"kind (see docs/CONTRACT.md); attributes: {sorted(attrs)}")
        if attrs["kind"] not in KINDS:
            raise SchemaError(f"node {n!r} ({attrs['op']}) has kind {attrs['kind']!r}; "
                              f"expected one of {KINDS}")
        data = dict(NODE_DEFAULTS)
        data.update(attrs)
        if data["scope"] is None:
            data["scope"] = ""
        if data["step"] is not None and type(data["step"]) is not int:
            data["step"] = int(data["step"])
        nodes.append((n, data))
    H = nx.DiGraph()
    H.graph.update(G.graph)
    H.add_nodes_from(nodes)
    H.add_edges_from((u, v, {**EDGE_DEFAULTS, **attrs}) for u, v, attrs in G.edges(data=True))
    # tape order makes every edge go forward: then it is acyclic and sorted ids are a topological
    # order; anything else gets the general check
    if all(type(n) is int for n, _ in nodes):
        forward = all(u < v for u, v in H.edges)
    else:
        forward = all(_sort_key(u) < _sort_key(v) for u, v in H.edges)
    if not forward and not nx.is_directed_acyclic_graph(H):
        cycle = nx.find_cycle(H)
        raise SchemaError(f"the graph has a cycle through {cycle[:4]}; a recorded graph is "
                          f"acyclic (edges go from input to consumer)")
    if H.graph.get("level") != "variable":  # contracted graphs were untagged before
        order = [n for n, _ in nodes] if forward else list(nx.topological_sort(H))
        infer(H, order)  # a plain loop without tg.step / .named: recover steps and names
        _untag_shared_leaves(H, order)
    H.graph[MARK] = True
    return H


def _untag_shared_leaves(H: nx.DiGraph, order: list) -> None:
    """Shared values are not computed at a step: untag parameters and step-free computations.

    A leaf's tag is only where it was first used, and so is a value computed from step-free
    inputs only (``W.T`` made once inside step 1). Such a node is untagged when it is a
    parameter or when it feeds the same kind of consumer at several steps (a whole-sequence
    input sliced at every step); a target y(t) read at t and by h(t+1) keeps its step.
    """
    for n in order:
        d = H.nodes[n]
        if d["step"] is None:
            continue
        if any(H.nodes[p]["step"] is not None for p in H.predecessors(n)):
            continue
        if d["kind"] == "param":
            d["step"] = None
            continue
        seen: dict[tuple, Any] = {}
        for c in H.successors(n):
            cd = H.nodes[c]
            sig = (cd["scope"], cd["op"], cd["name"], cd["param"])
            if seen.setdefault(sig, cd["step"]) != cd["step"]:
                d["step"] = None
                break


def _sort_key(n: Any) -> tuple:
    return (0, n, "") if isinstance(n, (int, float)) else (1, 0, str(n))


def sort_key(n: Any) -> tuple:
    """Deterministic order for node ids (ints first, numerically; then strings)."""
    return _sort_key(n)


def params_of(d: dict) -> list[str]:
    """Parameter names an op node reads directly (its ``param`` attribute, split on commas)."""
    p = d.get("param")
    if not p:
        return []
    return list(_split_params(str(p)))


@functools.lru_cache(maxsize=1024)
def _split_params(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


def is_finite(x: Any) -> bool:
    """True for a real, finite number (None and NaN/inf are not)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def output_node(G: nx.DiGraph) -> Any:
    """The traced output (graph attribute ``output`` or ``loss``), else the last sink, or None."""
    for key in ("loss", "output"):
        n = G.graph.get(key)
        if n is not None and n in G:
            return n
    sinks = [n for n in G if G.out_degree(n) == 0]
    return max(sinks, key=_sort_key) if sinks else None
