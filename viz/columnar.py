"""Reading a columnar graph archive (``Graph.save(path, format="columnar")``) into records.

Flow: tinygraph export_columnar (the file) -> **viz.columnar** -> viz.schema (load checks and
normalises the records, as for node-link JSON). viz reads the file format itself (the layout
in docs/CONTRACT.md, "Columnar files"); it imports nothing from tinygraph.
"""
from __future__ import annotations

import itertools
import json
import operator
import os
import zipfile
from typing import Any

import networkx as nx
import numpy as np

from .errors import SchemaError
from .gcpause import paused_gc

COLUMNAR = "tinygraph-columnar"  # the `format` entry of a columnar archive
_ZIP_MAGIC = b"PK\x03\x04"


def is_columnar(path: str | os.PathLike) -> bool:
    """True when ``path`` is a zip archive (a columnar graph); False when unreadable."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == _ZIP_MAGIC
    except OSError:  # missing, a folder: read_json says what is wrong
        return False


def read_columnar(path: str | os.PathLike) -> nx.DiGraph:
    """Read a columnar graph archive (``.npz``, the layout in docs/CONTRACT.md "Columnar files").

    Every column becomes the same Python values the node-link JSON gives (ints, floats, str,
    lists, None), so the graph is then checked and drawn exactly like one read from JSON.
    """
    attrs, nodes, edges = columnar_records(path)
    G = nx.DiGraph()
    G.graph.update(attrs)
    with paused_gc():
        G.add_nodes_from(enumerate(nodes))
        G.add_edges_from(edges)
    return G


def columnar_records(path: str | os.PathLike) -> tuple[dict, list[dict], list[tuple]]:
    """(graph attributes, node attribute dicts by id, ``(u, v, attrs)`` edges sorted by u as
    networkx lists them) of a columnar archive, checked to be one."""
    where = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if "format" not in z.files or str(z["format"]) != COLUMNAR:
                raise SchemaError(f"{where!r} is a zip archive but not a tinygraph columnar "
                                  f"graph (no format entry {COLUMNAR!r}); save one with "
                                  f"tg.Graph.save(path, format='columnar')")
            if int(z["version"]) != 1:
                raise SchemaError(f"{where!r}: columnar version {int(z['version'])}; this viz "
                                  f"reads version 1 (upgrade tinygraph's viz)")
            n, m = (int(k) for k in z["size"])
            kinds = json.loads(str(z["columns"]))
            node_cols = _read_columns(z, "node", kinds["node"], n, where)
            edge_cols = _read_columns(z, "edge", kinds["edge"], m, where)
            attrs = json.loads(str(z["graph"]))
    except (KeyError, ValueError, TypeError, OSError, zipfile.BadZipFile) as exc:
        if isinstance(exc, SchemaError):
            raise
        raise SchemaError(f"{where!r} is not a readable columnar graph: {type(exc).__name__} "
                          f"{exc}") from None
    if "source" not in edge_cols or "target" not in edge_cols:
        raise SchemaError(f"{where!r}: the edge table needs 'source' and 'target' columns")
    src, dst = edge_cols.pop("source"), edge_cols.pop("target")
    bad = [u for u in itertools.chain(src, dst) if type(u) is not int or not 0 <= u < n][:1]
    if bad:
        raise SchemaError(f"{where!r}: an edge names node {bad[0]!r}, outside 0..{n - 1}")
    with paused_gc():
        keys = list(node_cols)
        nodes = [dict(zip(keys, row)) for row in zip(*node_cols.values())] if keys else \
            [{} for _ in range(n)]
        keys = list(edge_cols)
        rows = zip(*edge_cols.values()) if keys else ((),) * m
        edges = [(u, v, dict(zip(keys, row))) for u, v, row in zip(src, dst, rows)]
        edges.sort(key=operator.itemgetter(0))  # stable: each node's inputs keep their order
    attrs = {k: v for k, v in attrs.items() if not str(k).startswith("_")}
    return attrs, nodes, edges


def _read_columns(z: Any, part: str, kinds: dict[str, str], size: int, where: str
                  ) -> dict[str, list]:
    """Decode each column of ``part`` ("node" / "edge") into a list of Python values."""
    out: dict[str, list] = {}
    for key, kind in kinds.items():
        name = f"{part}/{key}"
        if kind in ("text", "json"):
            table = json.loads(str(z[name + ".values"]))
            if kind == "json":
                table = [json.loads(t) for t in table]
            table.append(None)  # code -1 is None
            values = [table[c] for c in z[name + ".codes"].tolist()]
            if kind == "json":  # one list object per entry, as JSON gives (never shared)
                values = [list(v) if type(v) is list else v for v in values]
        elif kind in ("int", "float", "bool"):
            values = z[name].tolist()
            if name + ".none" in z.files:
                for i in np.flatnonzero(z[name + ".none"]).tolist():
                    values[i] = None
        else:
            raise SchemaError(f"{where!r}: column {name!r} has unknown kind {kind!r}")
        if len(values) != size:
            raise SchemaError(f"{where!r}: column {name!r} has {len(values)} entries for "
                              f"{size} {part}s")
        out[key] = values
    return out
