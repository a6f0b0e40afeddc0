"""Export: the recorded graph as plain records, networkx and JSON (the boundary viz reads).

Flow: tape -> `trace(output)` -> `Graph` -> `Graph.to_networkx()` / `Graph.save()` -> viz.

The schema is documented in the README ("The graph schema"). Node ids are renumbered 0..n-1 in
tape order, so the same program gives the same export, byte for byte.
"""
from __future__ import annotations

import json
from typing import Any

from .tape import Tape
from .tensor import Tensor

SCHEMA_VERSION = 1
NODE_KEYS = ("op", "kind", "name", "shape", "dtype", "scope", "step", "param", "requires_grad",
             "src", "code", "value_norm", "grad_norm")


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
        g.add_nodes_from((n["id"], {k: v for k, v in n.items() if k != "id"}) for n in self.nodes)
        g.add_edges_from((e["source"], e["target"],
                          {k: v for k, v in e.items() if k != "source" and k != "target"})
                         for e in self.edges)
        return g

    def to_dict(self) -> dict:
        """The networkx node-link form (``edges="edges"``) as plain data."""
        return {"directed": True, "multigraph": False, "graph": self.attrs,
                "nodes": self.nodes, "edges": self.edges}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=True)

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
    return None if x is None else float(x)  # NaN / inf are kept: they are the point


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
    add_node, add_edge = nodes.append, edges.append
    gn, en = tape.grad_norms, tape.edge_norms
    meta, names, ops, inputs = tape.meta, tape.names, tape.ops, tape.inputs
    src, code, vn = tape.src, tape.code, tape.value_norms
    dtypes: dict[Any, str] = {}
    for k, i in enumerate(order):
        shape, dtype, kind, scope, step, req = meta[i]
        ins = inputs[i]
        params = [names[j] for j in ins if meta[j][2] == "param" and j in names]
        if len(params) > 1:
            params = list(dict.fromkeys(params))
        dt = dtypes.get(dtype)
        if dt is None:
            dt = dtypes[dtype] = str(dtype)
        op = ops[i]
        add_node({
            "id": k, "op": "leaf" if op is None else op.name, "kind": kind, "name": names.get(i),
            "shape": list(shape), "dtype": dt, "scope": scope, "step": step,
            "param": ",".join(params) or None, "requires_grad": req,
            "src": src.get(i), "code": code.get(i), "value_norm": _num(vn.get(i)),
            "grad_norm": _num(gn.get(i))})
        if len(ins) <= 2 and (len(ins) < 2 or ins[0] != ins[1]):
            for pos, j in enumerate(ins):  # the common case: one edge per input
                add_edge({"source": new_id[j], "target": k, "arg": pos, "args": [pos],
                          "grad_norm": _num(en.get((j, i)))})
            continue
        # an input used at several positions is one edge listing them all: group the positions
        # in one pass (a `stack` of 10^5 step losses has 10^5 inputs: no quadratic scan)
        positions: dict[int, list[int]] = {}
        for pos, j in enumerate(ins):
            at = positions.get(j)
            if at is None:
                positions[j] = [pos]
            else:
                at.append(pos)
        for j, args in positions.items():  # dicts keep first-use order: edges by first position
            add_edge({"source": new_id[j], "target": k, "arg": args[0], "args": args,
                      "grad_norm": _num(en.get((j, i)))})
    out = new_id[output._idx]
    attrs = {"engine": "tinygraph", "version": _version(), "schema": SCHEMA_VERSION,
             "output": out, "loss": out if output.data.size == 1 else None}
    return Graph(nodes, edges, attrs)
