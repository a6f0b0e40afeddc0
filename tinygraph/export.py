"""Export: the recorded graph as plain records, networkx and JSON (the boundary viz reads).

Flow: tape -> `trace(output)` -> `Graph` -> `Graph.to_networkx()` / `Graph.save()` -> viz.

The schema is documented in the README ("The graph schema"). Node ids are renumbered 0..n-1 in
tape order, so the same program gives the same export, byte for byte.
"""
from __future__ import annotations

import json
import math
from typing import Any

from .tape import Tape
from .tensor import Tensor

SCHEMA_VERSION = 1
NODE_KEYS = ("op", "kind", "name", "shape", "dtype", "scope", "step", "param", "requires_grad",
             "src", "value_norm", "grad_norm")


def _version() -> str:
    from . import __version__
    return __version__


class Graph:
    """A traced computational graph: node and edge records in the documented schema.

    Attributes
    ----------
    nodes : list of dict
        One dict per node, in tape order; the node id is the list index (key ``id``).
    edges : list of dict
        ``{"source", "target", "arg", "args", "grad_norm"}``, from input to consumer.
    attrs : dict
        ``engine``, ``version``, ``schema``, ``output``, ``loss``.
    """

    def __init__(self, nodes: list[dict], edges: list[dict], attrs: dict) -> None:
        self.nodes = nodes
        self.edges = edges
        self.attrs = attrs

    def __len__(self) -> int:
        return len(self.nodes)

    def __repr__(self) -> str:
        return f"Graph({len(self.nodes)} nodes, {len(self.edges)} edges, output={self.attrs.get('output')})"

    def to_networkx(self) -> Any:
        """A `networkx.DiGraph` with the schema's node, edge and graph attributes."""
        import networkx as nx
        g = nx.DiGraph(**self.attrs)
        for n in self.nodes:
            g.add_node(n["id"], **{k: v for k, v in n.items() if k != "id"})
        for e in self.edges:
            g.add_edge(e["source"], e["target"],
                       **{k: v for k, v in e.items() if k not in ("source", "target")})
        return g

    def to_dict(self) -> dict:
        """The networkx node-link form (``edges="edges"``) as plain data."""
        return {"directed": True, "multigraph": False, "graph": self.attrs,
                "nodes": self.nodes, "edges": self.edges}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=1, allow_nan=True)

    def save(self, path: str) -> None:
        """Write the graph as node-link JSON (readable by `Graph.load`, viz and networkx)."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_json())
            f.write("\n")

    @classmethod
    def load(cls, path: str) -> "Graph":
        """Read a graph written by `save`."""
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict) -> "Graph":
        if not isinstance(data, dict) or "nodes" not in data:
            raise ValueError("Graph.load: not a node-link graph (no 'nodes' key)")
        edges = data.get("edges", data.get("links"))
        if edges is None:
            raise ValueError("Graph.load: not a node-link graph (no 'edges' key)")
        return cls(list(data["nodes"]), list(edges), dict(data.get("graph", {})))


def _reachable(tape: Tape, root: int) -> list[int]:
    inputs = tape.inputs
    seen = bytearray(root + 1)
    seen[root] = 1
    for i in range(root, -1, -1):  # inputs always have smaller ids: one reverse pass suffices
        if seen[i]:
            for j in inputs[i]:
                seen[j] = 1
    return [i for i in range(root + 1) if seen[i]]


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    return float(x) if math.isfinite(x) else x  # NaN / inf are kept: they are the point


def trace(output: Tensor) -> Graph:
    """The graph of every node that `output` depends on, in tape order.

    After ``backward(keep_grads=True)`` nodes and edges carry ``grad_norm``.
    """
    if not isinstance(output, Tensor):
        raise TypeError(f"trace: expected a Tensor, got {type(output).__name__}")
    tape = output._tape
    if tape is None:
        raise ValueError("trace: this tensor was not made by recorded ops (a leaf, or made under "
                         "no_grad() or from constants only): there is no graph to trace")
    order = _reachable(tape, output._idx)
    new_id = {old: k for k, old in enumerate(order)}
    nodes, edges = [], []
    gn, en = tape.grad_norms, tape.edge_norms
    meta, names = tape.meta, tape.names
    for k, i in enumerate(order):
        shape, dtype, kind, scope, step, req = meta[i]
        ins = tape.inputs[i]
        params = []
        for j in ins:
            if meta[j][2] == "param" and names.get(j) and names[j] not in params:
                params.append(names[j])
        nodes.append({
            "id": k, "op": tape.op_name(i), "kind": kind, "name": names.get(i),
            "shape": [int(d) for d in shape], "dtype": str(dtype), "scope": scope, "step": step,
            "param": ",".join(params) or None, "requires_grad": bool(req),
            "src": tape.src.get(i), "value_norm": _num(tape.value_norms.get(i)),
            "grad_norm": _num(gn.get(i))})
        for pos, j in enumerate(ins):
            if j in ins[:pos]:
                continue
            args = [p for p, jj in enumerate(ins) if jj == j]
            edges.append({"source": new_id[j], "target": k, "arg": args[0], "args": args,
                          "grad_norm": _num(en.get((j, i)))})
    out = new_id[output._idx]
    attrs = {"engine": "tinygraph", "version": _version(), "schema": SCHEMA_VERSION,
             "output": out, "loss": out if output.data.size == 1 else None}
    return Graph(nodes, edges, attrs)
