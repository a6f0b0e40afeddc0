"""Load, check and normalise the exported graph: the door into `viz`.

Flow: tinygraph export (networkx.DiGraph / JSON) -> **viz.schema** -> levels / fold / views.

Everything in `viz` starts from :func:`load`, which accepts a ``networkx.DiGraph`` in the schema
of ``docs/CONTRACT.md``, any object with a ``to_networkx()`` method, or a path to a saved JSON
graph (networkx node-link format). It returns a fresh copy with every attribute present, so the
caller's graph is never modified and the rest of the package can index attributes directly.
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import numbers
import operator
import os
import re
from typing import Any, Callable

import networkx as nx

from .columnar import columnar_records, is_columnar, read_columnar  # noqa: F401 (re-exported)
from .errors import SchemaError
from .gcpause import without_gc
from .infer import infer
from .join import join_steps

SCHEMA_VERSION = 1
KINDS = ("param", "input", "const", "op")

#: node attribute -> default filled in when absent (the schema says "always present")
NODE_DEFAULTS: dict[str, Any] = {
    "name": None, "shape": None, "dtype": None, "scope": "", "step": None, "param": None,
    "requires_grad": True, "src": None, "value_norm": None, "grad_norm": None,
}
EDGE_DEFAULTS: dict[str, Any] = {"arg": 0, "args": None, "grad_norm": None}


MARK = "_viz_normalised"


def load(graph: Any) -> nx.DiGraph:
    """Return a normalised copy of ``graph`` in the tinygraph schema.

    Parameters
    ----------
    graph : networkx.DiGraph, object with ``to_networkx()``, str or os.PathLike
        The recorded graph, or a path to a JSON file written with
        ``networkx.node_link_data(G, edges="edges")`` (what ``tg.Graph.save`` writes), or to a
        columnar archive (``tg.Graph.save(path, format="columnar")``, see :func:`read_columnar`).

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
        if is_columnar(graph):  # straight from its columns to the checked graph
            attrs, nodes, edges = columnar_records(graph)
            return _normalised(attrs, list(range(len(nodes))), nodes, edges)
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
    where = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"graph file {where!r} is a folder; give the JSON file saved "
                                f"with tg.Graph.save or viz.save_json")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise FileNotFoundError(f"graph file not found: {where!r}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{where!r} is not valid JSON ({exc}); expected a graph "
                          f"saved with networkx.node_link_data(G, edges='edges')") from None
    if not isinstance(data, dict) or "nodes" not in data:
        raise SchemaError(f"{where!r} is not a node-link graph: no 'nodes' key")
    if "edges" not in data and "links" in data:  # older networkx wrote "links"
        data = dict(data, edges=data.pop("links"))
    if "edges" not in data:
        raise SchemaError(f"{where!r} is not a node-link graph: no 'edges' key (a graph "
                          f"without edges has \"edges\": [])")
    for key in ("nodes", "edges"):
        items = data[key]
        if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
            raise SchemaError(f"{where!r}: {key!r} must be a list of objects")
    missing = [x for x in data["nodes"] if "id" not in x] + \
        [x for x in data["edges"] if "source" not in x or "target" not in x]
    if missing:
        raise SchemaError(f"{where!r}: every node needs an 'id' and every edge a 'source' and "
                          f"a 'target'; this one has not: {_short(missing[0])}")
    data = dict(data, directed=True, multigraph=False)
    try:
        G = nx.node_link_graph(data, edges="edges")
    except (TypeError, ValueError, KeyError) as exc:  # an unhashable id, a bad graph entry
        raise SchemaError(f"{where!r} is not a node-link graph: {type(exc).__name__} "
                          f"{exc}") from None
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
    ids = tape_order(G)
    return _normalised(G.graph, ids, [G.nodes[n] for n in ids], list(G.edges(data=True)))


@without_gc
def _normalised(graph_attrs: dict, ids: list, node_attrs: list[dict], edges: list[tuple]
                ) -> nx.DiGraph:
    """:func:`normalise` from records: node ids in tape order with their attribute dicts, and
    ``(u, v, attrs)`` edges in networkx's order (grouped by source in node order)."""
    checked = _checked_columns(node_attrs, NODE_DEFAULTS, NODE_TYPES, node=True)
    if checked is None:  # something uncommon: per-node checks say exactly what and where
        checked = [check_node(n, a) for n, a in zip(ids, node_attrs)]
    nodes = list(zip(ids, checked))
    H = nx.DiGraph()
    H.graph.update(graph_attrs)
    H.add_nodes_from(nodes)
    checked = _checked_columns([a for _, _, a in edges], EDGE_DEFAULTS, EDGE_TYPES, node=False)
    if checked is None:
        checked = [check_edge(u, v, a) for u, v, a in edges]
    H.add_edges_from((u, v, a) for (u, v, _), a in zip(edges, checked))
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
        join_steps(H)    # per-step terms made outside tg.step (a partly annotated loop)
        _untag_shared_leaves(H, order)
    H.graph[MARK] = True
    return H


def _checked_columns(records: list[dict], defaults: dict, types: dict, node: bool
                     ) -> list[dict] | None:
    """Fill defaults and check types one attribute (column) at a time, or None to fall back.

    The fast path for what exporters write: each column's set of value types is taken at C
    speed and compared with the common types; distinct texts are checked once each. Anything
    else (a missing op/kind, an unknown kind, another type, unprintable or long text) returns
    None, and the per-record checks (:func:`check_node` / :func:`check_edge`) run instead,
    so errors and repairs are exactly theirs.
    """
    if node and not all("op" in a and "kind" in a for a in records):
        return None
    out = [{**defaults, **a} for a in records]
    for key in types:
        col = list(map(operator.itemgetter(key), out))
        seen = set(map(type, col))
        if node and key == "shape" or not node and key == "args":
            seen.discard(list)
            lists = [x for x in col if type(x) is list]
            if set(map(type, itertools.chain.from_iterable(lists))) - {int}:
                return None
        if seen - set(EDGE_COMMON[key] if not node else COMMON_TYPES[key]):
            return None
        if node and key in TEXT_ATTRS and not all(
                x is None or len(x) <= MAX_TEXT and x.isprintable() for x in set(col)):
            return None
    if node:
        kinds = list(map(operator.itemgetter("kind"), out))
        if set(map(type, kinds)) - {str} or not set(kinds) <= set(KINDS):
            return None
        for d in out:  # a fresh list, as check_node makes
            if d["shape"] is not None:
                d["shape"] = list(d["shape"])
    return out


def check_node(n: Any, attrs: dict) -> dict:
    """The node's attributes with defaults filled in, checked against the schema's types.

    Text shown in figures (name, op, scope, ...) is made printable (:func:`printable`).
    """
    if "op" not in attrs or "kind" not in attrs:
        key = "op" if "op" not in attrs else "kind"
        raise SchemaError(f"node {n!r} has no {key!r} attribute; every node needs op and "
                          f"kind (python -m viz --schema); attributes: "
                          f"{sorted(map(str, attrs))}")
    if not isinstance(attrs["kind"], str) or attrs["kind"] not in KINDS:
        raise SchemaError(f"node {n!r} ({attrs['op']!r}) has 'kind' {attrs['kind']!r}; "
                          f"expected one of {KINDS}")
    data = dict(NODE_DEFAULTS)
    data.update(attrs)
    if data["scope"] is None:
        data["scope"] = ""
    where = f"node {n!r} ({data['op']!r}"
    where += f" at {data['scope'] or 'top level'} step {data['step']!r})"
    for key, (check, expected) in NODE_TYPES.items():
        value = data[key]
        if type(value) in COMMON_TYPES[key]:  # fast path: what the exporter writes
            continue
        if key == "shape" and _plain_ints(value):
            continue
        if not check(value):
            raise SchemaError(f"{where}: attribute {key!r} is {type(value).__name__} "
                              f"{_short(value)}; expected {expected} "
                              f"(python -m viz --schema)")
    if data["step"] is not None:
        data["step"] = int(data["step"])
    if data["shape"] is not None:
        data["shape"] = [int(k) for k in data["shape"]]
    for key in TEXT_ATTRS:
        text = data[key]
        if text is not None and (len(text) > MAX_TEXT or not text.isprintable()):
            data[key] = printable(text)
    return data


def check_edge(u: Any, v: Any, attrs: dict) -> dict:
    """The edge's attributes with defaults filled in, checked against the schema's types."""
    data = {**EDGE_DEFAULTS, **attrs}
    if (type(data["arg"]) is int and type(data["grad_norm"]) in _FLOAT_OR_NONE
            and (data["args"] is None or _plain_ints(data["args"]))):
        return data  # fast path: what the exporter writes (the checks below are ~10x slower)
    for key, (check, expected) in EDGE_TYPES.items():
        if not check(data[key]):
            raise SchemaError(f"edge {u!r} -> {v!r}: attribute {key!r} is "
                              f"{type(data[key]).__name__} {_short(data[key])}; expected "
                              f"{expected} (python -m viz --schema)")
    return data


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool) or (
        isinstance(x, float) and x.is_integer())


def _is_real(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda x: x is None or check(x)


_FLOAT_OR_NONE = (float, type(None))


def _plain_ints(x: Any) -> bool:
    """A list of exact Python ints (the exporter's shapes and args): checked without ABCs."""
    return type(x) is list and all(type(k) is int for k in x)


def _is_ints(x: Any) -> bool:
    return isinstance(x, (list, tuple)) and all(_is_int(k) for k in x)


def _is_str(x: Any) -> bool:
    return isinstance(x, str)


#: attribute -> (check, what was expected), from the table in docs/CONTRACT.md
NODE_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "op": (_is_str, "str"),
    "name": (_optional(_is_str), "str or None"),
    "shape": (_optional(_is_ints), "a list of ints or None"),
    "dtype": (_optional(_is_str), "str or None"),
    "scope": (_is_str, "str"),
    "step": (_optional(_is_int), "int or None"),
    "param": (_optional(_is_str), "str or None"),
    "requires_grad": (lambda x: isinstance(x, (bool, numbers.Integral)) and x in (0, 1),
                      "bool"),
    "src": (_optional(_is_str), "str or None"),
    "value_norm": (_optional(_is_real), "a number or None"),
    "grad_norm": (_optional(_is_real), "a number or None"),
}
EDGE_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "arg": (_is_int, "int"),
    "args": (_optional(_is_ints), "a list of ints or None"),
    "grad_norm": (_optional(_is_real), "a number or None"),
}
#: exact types that pass their check without calling it
COMMON_TYPES: dict[str, tuple[type, ...]] = {
    "op": (str,), "name": (str, type(None)), "shape": (type(None),), "dtype": (str, type(None)),
    "scope": (str,), "step": (int, type(None)), "param": (str, type(None)),
    "requires_grad": (bool,), "src": (str, type(None)), "value_norm": (float, type(None)),
    "grad_norm": (float, type(None)),
}
EDGE_COMMON: dict[str, tuple[type, ...]] = {
    "arg": (int,), "args": (type(None),), "grad_norm": (float, type(None)),
}
TEXT_ATTRS = ("op", "name", "dtype", "scope", "param", "src")
MAX_TEXT = 200  # characters; Graphviz rejects an HTML label longer than 16384 bytes
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def printable(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` made safe to show: control characters escaped, at most ``limit`` characters.

    C0 controls become their Unicode pictures (``"\\x01"`` -> ``"␁"``), other unprintable code
    points (C1 controls, lone surrogates, U+FFFE/FFFF) a ``\\x..``/``\\u....`` escape; a longer
    text keeps its start and a short hash of the whole, so two long names stay two names.

    Examples
    --------
    >>> printable("h\\x01"), printable("x" * 300)[-10:]
    ('h␁', 'xxx…9d8f0e')
    """
    if _UNPRINTABLE.search(text):
        text = _UNPRINTABLE.sub(_escape_char, text)
    if len(text) > limit:
        digest = hashlib.sha1(text.encode("utf-8", "backslashreplace")).hexdigest()[:6]
        text = text[:limit - 7] + "…" + digest
    return text


def _escape_char(m: re.Match) -> str:
    c = ord(m.group())
    if c < 0x20:
        return chr(0x2400 + c)
    if c == 0x7F:
        return "\u2421"  # ␡
    return f"\\x{c:02x}" if c <= 0xFF else f"\\u{c:04x}"


def describe() -> str:
    """The attribute types :func:`load` checks, as text (``python -m viz --schema``)."""
    lines = [f"graph schema {SCHEMA_VERSION} (described in full in docs/CONTRACT.md of the tinygraph sources)",
             f"node kinds: {', '.join(KINDS)}", "node attributes:"]
    lines += [f"  {k:14} {expected}" for k, (_, expected) in NODE_TYPES.items()]
    lines.append("edge attributes:")
    lines += [f"  {k:14} {expected}" for k, (_, expected) in EDGE_TYPES.items()]
    return "\n".join(lines)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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


def tape_order(G: nx.DiGraph) -> list:
    """The nodes sorted by :func:`sort_key`; plain int ids (every export) sort without a key."""
    ids = list(G)
    if all(type(n) is int for n in ids):
        ids.sort()
        return ids
    return sorted(ids, key=_sort_key)


def edge_order(G: nx.DiGraph) -> list[tuple]:
    """``(u, v, attrs)`` sorted by consumer, then input (:func:`sort_key`); fast for int ids."""
    edges = list(G.edges(data=True))
    if all(type(n) is int for n in G):
        edges.sort(key=lambda e: (e[1], e[0]))
    else:
        edges.sort(key=lambda e: (_sort_key(e[1]), _sort_key(e[0])))
    return edges


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
