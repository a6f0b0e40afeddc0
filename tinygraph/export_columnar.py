"""Columnar export: the traced graph as one array per attribute, in a compressed numpy archive.

Flow: tape -> `trace(output)` -> `Graph` -> **export_columnar** (``Graph.save(path,
format="columnar")``) -> viz (``viz.load`` reads the archive itself; it imports nothing from here).

Node-link JSON stays the interchange format; this one is for long sequences: a 10^5-step RNN is
about a million nodes; at 10^4 steps its JSON is 34 MB and this archive 1.3 MB (measured by
``python -m bench.bench_viz scale``). The archive is a ``.npz`` file (a zip of ``.npy`` arrays,
no pickles), laid out as docs/CONTRACT.md ("Columnar files") describes:

- ``format`` = ``"tinygraph-columnar"``, ``version`` = 1, ``graph`` = the graph attributes as JSON;
- ``node/<attr>`` and ``edge/<attr>`` columns, one entry per node (tape order, node id = index) or
  per edge. Each attribute is stored by the kind its values have: ``int``/``float`` columns
  (int64/float64, plus ``<attr>.none``, a bool mask, when some values are None), ``bool``, and
  ``text`` (``<attr>.codes``, int32 indices into ``<attr>.values``, a JSON list of the distinct
  strings; -1 is None), and ``json`` (the same, for anything else, each value written as its JSON
  text: shapes, ``args``). ``columns`` lists them as JSON
  ``{"node": {attr: kind}, "edge": {attr: kind}}``.
"""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

FORMAT = "tinygraph-columnar"
VERSION = 1


def save(graph: Any, path: str | os.PathLike, format: str = "columnar") -> None:
    """``Graph.save(path, format)`` for every format but JSON: only ``"columnar"`` exists."""
    if format != "columnar":
        raise ValueError(f"Graph.save: format must be 'json' or 'columnar', got {format!r}")
    save_columnar(graph.nodes, graph.edges, graph.attrs, path)


def save_columnar(nodes: list[dict], edges: list[dict], attrs: dict,
                  path: str | os.PathLike) -> None:
    """Write node and edge records (the `Graph` fields) as a compressed columnar archive.

    Parameters
    ----------
    nodes, edges : list of dict
        ``Graph.nodes`` (with ``id`` = list index) and ``Graph.edges``.
    attrs : dict
        ``Graph.attrs`` (JSON-serialisable).
    path : str or os.PathLike
        The file to write (written as given: no extension is added).

    Examples
    --------
    >>> g = tg.trace(loss); g.save("elman.npz", format="columnar")   # doctest: +SKIP
    >>> viz.folded("elman.npz")                                      # doctest: +SKIP
    """
    for k, n in enumerate(nodes):
        if n.get("id") != k:
            raise ValueError(f"save_columnar: node ids must be 0..n-1 in order (what trace "
                             f"makes); node {k} has id {n.get('id')!r}")
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT), "version": np.array(VERSION),
        "graph": np.array(json.dumps(attrs, allow_nan=True, sort_keys=True)),
        "size": np.array([len(nodes), len(edges)], dtype=np.int64)}
    kinds: dict[str, dict[str, str]] = {"node": {}, "edge": {}}
    for part, records, skip in (("node", nodes, "id"), ("edge", edges, None)):
        keys = list(dict.fromkeys(k for r in records for k in r if k != skip))
        for key in keys:
            kinds[part][key] = _column(f"{part}/{key}", [r.get(key) for r in records], arrays)
    arrays["columns"] = np.array(json.dumps(kinds))
    with open(path, "wb") as fh:  # a file object: numpy would otherwise append ".npz"
        np.savez_compressed(fh, **arrays)


def _column(name: str, values: list, out: dict[str, np.ndarray]) -> str:
    """Store one attribute's values under ``name``; return the column kind written."""
    types = set(map(type, values)) - {type(None)}
    has_none = any(v is None for v in values)
    if types == {bool} and not has_none:
        out[name] = np.array(values, dtype=bool)
        return "bool"
    if types in ({int}, {float}) and _fits(values, types):
        kind = "int" if types == {int} else "float"
        fill = 0 if kind == "int" else 0.0
        out[name] = np.array([fill if v is None else v for v in values],
                             dtype=np.int64 if kind == "int" else np.float64)
        if has_none:
            out[name + ".none"] = np.array([v is None for v in values], dtype=bool)
        return kind
    as_json = not types <= {str}  # strings share a column with JSON texts only as JSON
    table: dict[Any, int] = {}
    texts: list[str] = []
    codes = []
    for v in values:
        if v is None:
            codes.append(-1)
            continue
        key = _key(v, as_json)
        code = table.get(key)
        if code is None:
            code = table[key] = len(texts)
            texts.append(json.dumps(v, allow_nan=True) if as_json else v)
        codes.append(code)
    out[name + ".codes"] = np.array(codes, dtype=np.int32)
    # the table as one JSON text: numpy's str arrays would drop a trailing NUL of a value
    out[name + ".values"] = np.array(json.dumps(texts))
    return "json" if as_json else "text"


def _key(v: Any, as_json: bool) -> Any:
    """A hashable key equal only for values with the same JSON text (1, 1.0, True differ)."""
    if not as_json:
        return v
    if type(v) is list and all(type(k) is int for k in v):
        return tuple(v)  # shapes and args: no json.dumps per entry
    return (json.dumps(v, allow_nan=True),)


def _fits(values: list, types: set) -> bool:
    """Ints must fit int64 (Python ints are unbounded)."""
    if types != {int}:
        return True
    return all(v is None or -2**63 <= v < 2**63 for v in values)
