"""Export: the recorded graph as plain records, networkx and JSON (the boundary viz reads).

Flow: tape -> `trace(output)` -> `Graph` -> `Graph.to_networkx()` / `Graph.save()` -> viz.

The schema is documented in the README ("The graph schema"). Node ids are renumbered 0..n-1 in
tape order, so the same program gives the same export, byte for byte.
"""
from __future__ import annotations

import contextlib
import gc
import json
import weakref
from typing import Any, Iterator

from .tape import Tape
from .tensor import Tensor

SCHEMA_VERSION = 1
NODE_KEYS = ("op", "kind", "name", "shape", "dtype", "scope", "step", "param", "requires_grad",
             "src", "code", "value_norm", "grad_norm")


def _version() -> str:
    from .version import __version__
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
        ``engine``, ``version``, ``schema``, ``output``, ``loss`` (and ``flow``: see `trace`).
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
        """A `networkx.DiGraph` with the schema's node, edge and graph attributes (linear time)."""
        import networkx as nx
        g = nx.DiGraph(**self.attrs)
        with gc_paused():
            g.add_nodes_from((n["id"], _without(n, "id")) for n in self.nodes)
            g.add_edges_from((e["source"], e["target"], _without(e, "source", "target"))
                             for e in self.edges)
        return g

    def to_dict(self) -> dict:
        """The networkx node-link form (``edges="edges"``) as plain data."""
        return {"directed": True, "multigraph": False, "graph": self.attrs,
                "nodes": self.nodes, "edges": self.edges}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=True)

    def save(self, path: str, format: str = "json") -> None:
        """Write the graph as node-link JSON (readable by `Graph.load`, viz and networkx), or
        ``format="columnar"``: a compressed archive of columns that viz reads (export_columnar)."""
        if format != "json":
            from .export_columnar import save
            return save(self, path, format)
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


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many acyclic records.

    Every node and edge record is a new tracked dict: with the collector on, its passes over the
    growing heap cost about twice the building itself (measured in bench/bench_viz.py). The
    records hold no cycles, so nothing is left for it to find.
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def _without(d: dict, *keys: str) -> dict:
    d = d.copy()
    for k in keys:
        del d[k]
    return d


def reachable(inputs: Any, root: int) -> list[int]:
    """The ids `root` depends on (itself included), in order, for nodes whose `inputs[i]` are
    ids smaller than i (a tape; the torch adapter's recording)."""
    seen = bytearray(root + 1)
    seen[root] = 1
    for i in range(root, -1, -1):  # inputs always have smaller ids: one reverse pass suffices
        if seen[i]:
            for j in inputs[i]:
                seen[j] = 1
    return [i for i in range(root + 1) if seen[i]]


def trace(output: Tensor, flow: Any = None) -> Graph:
    """The graph of every node that `output` depends on, in tape order.

    After ``backward(keep_grads=True)`` nodes and edges carry ``grad_norm``. Linear in nodes +
    edges: one pass over the tape, each input list read once (no recursion, no quadratic scans).

    Parameters
    ----------
    output : Tensor
        A tensor made by recorded ops (usually the loss).
    flow : tg.flow result, optional
        Becomes the graph attribute ``flow`` (per-loss-term flow, spectra).

    Returns
    -------
    Graph
        Nodes renumbered 0..n-1 in tape order, in the schema of docs/CONTRACT.md.

    Examples
    --------
    >>> import tinygraph as tg
    >>> x = tg.tensor([1.0, 2.0], requires_grad=True, name="x")
    >>> g = trace(tg.tanh(x * x).sum())
    >>> [n["op"] for n in g.nodes], len(g.edges)
    (['leaf', 'mul', 'tanh', 'sum'], 3)
    """
    if not isinstance(output, Tensor):
        raise TypeError(f"trace: expected a Tensor, got {type(output).__name__}")
    tape = output._tape
    if tape is None:
        raise ValueError("trace: this tensor was not made by recorded ops (a leaf, or made under "
                         "no_grad() or from constants only): there is no graph to trace")
    with gc_paused():
        graph = _records(tape, output, flow)
    return graph


def _records(tape: Tape, output: Tensor, flow: Any) -> Graph:
    root, to_view = output._idx, None
    if UNFOLDS.get(tape):             # fused ops recorded here: export their per-step records
        tape, to_view = _unfolded(tape, UNFOLDS[tape])
        root = to_view[root]
    order = reachable(tape.inputs, root)
    new_id = {old: k for k, old in enumerate(order)}
    nodes: list[dict] = []
    edges: list[dict] = []
    add_node, add_edge = nodes.append, edges.append
    # norms are stored as Python floats (NaN / inf kept: they are the point)
    gn, en = tape.grad_norms, tape.edge_norms
    meta, names, ops, inputs = tape.meta, tape.names, tape.ops, tape.inputs
    src, code, vn = tape.src, tape.code, tape.value_norms
    dtypes: dict[Any, str] = {}
    param_name: dict[int, str] = {}  # named parameter leaves seen so far (inputs come first)
    for k, i in enumerate(order):
        shape, dtype, kind, scope, step, req = meta[i]
        ins = inputs[i]
        n_in = len(ins)
        op = ops[i]
        if op is None:
            param = None
            if kind == "param" and i in names:
                param_name[i] = names[i]
        elif n_in == 1:
            param = param_name.get(ins[0])
        elif n_in == 2:
            p0, p1 = param_name.get(ins[0]), param_name.get(ins[1])
            param = p0 if p1 is None or p1 == p0 else p1 if p0 is None else f"{p0},{p1}"
        else:
            param = ",".join(dict.fromkeys(param_name[j] for j in ins if j in param_name)) or None
        dt = dtypes.get(dtype)
        if dt is None:
            dt = dtypes[dtype] = str(dtype)
        add_node({
            "id": k, "op": "leaf" if op is None else op.name, "kind": kind, "name": names.get(i),
            "shape": list(shape), "dtype": dt, "scope": scope, "step": step, "param": param,
            "requires_grad": req, "src": src.get(i), "code": code.get(i),
            "value_norm": vn.get(i), "grad_norm": gn.get(i)})
        if n_in == 1 or n_in == 2 and ins[0] != ins[1]:  # the common case: one edge per input
            for pos, j in enumerate(ins):
                add_edge({"source": new_id[j], "target": k, "arg": pos, "args": [pos],
                          "grad_norm": en.get((j, i))})
        elif n_in:
            # an input used at several positions is one edge listing them all: group positions
            # in one pass (a `stack` of 10^5 step losses has 10^5 inputs: no quadratic scan)
            positions: dict[int, list[int]] = {}
            for pos, j in enumerate(ins):
                at = positions.get(j)
                if at is None:
                    positions[j] = [pos]
                else:
                    at.append(pos)
            for j, args in positions.items():  # dicts keep first-use order: edges by position
                add_edge({"source": new_id[j], "target": k, "arg": args[0], "args": args,
                          "grad_norm": en.get((j, i))})
    out = new_id[root]
    attrs = {"engine": "tinygraph", "version": _version(), "schema": SCHEMA_VERSION,
             "output": out, "loss": out if output.data.size == 1 else None}
    if flow is not None:
        if to_view is not None:       # flow names tape ids: map them through the expansion
            new_id = {i: new_id[v] for i, v in to_view.items() if v in new_id}
        attrs["flow"] = flow.to_attrs(new_id)
    return Graph(nodes, edges, attrs)


# ------------------------------------------------------------------------------------------------
# fused ops drawn as the steps they fuse
# ------------------------------------------------------------------------------------------------

# tape -> {first node id of a fused group: its unfold}; filled by fused ops (tinygraph.nn.fused)
UNFOLDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def register_unfold(tape: Tape, unfold: Any) -> None:
    """Have `trace` export the group ``unfold.start..unfold.end-1`` of `tape` as its steps."""
    UNFOLDS.setdefault(tape, {})[unfold.start] = unfold


def fused_states(states: list) -> tuple[Any, list[int]] | None:
    """``(unfold, [t, ...])`` when every tensor of `states` is a step h(t) of one fused group
    (its per-step slices carry no gradient of the recurrence: ask the unfold); else None."""
    tape = states[0]._tape
    for u in UNFOLDS.get(tape, {}).values() if tape is not None else ():
        keys = [u.aliases.get(s._idx) if s._tape is tape else None for s in states]
        if all(k is not None and k[0] == "h" for k in keys):
            return u, [k[1] for k in keys]
    return None


class _OpName:
    """Stands in for an op class in an expanded record (the export reads only ``.name``)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class _View:
    """The parts of a tape the export reads, rebuilt with fused groups expanded."""

    def __init__(self) -> None:
        self.ops: list[Any] = []
        self.inputs: list[tuple] = []
        self.meta: list[tuple] = []
        self.names: dict[int, str] = {}
        self.src: dict[int, str] = {}
        self.code: dict[int, str] = {}
        self.value_norms: dict[int, float] = {}
        self.grad_norms: dict[int, float] = {}
        self.edge_norms: dict[tuple[int, int], float] = {}


def _unfolded(tape: Tape, unfolds: dict) -> tuple[_View, dict[int, int]]:
    """The tape with each fused group (nodes ``start..end-1``) replaced by its per-step records.

    An unfold gives ``records()``: ``(key, op name or None, meta, name)`` followed by the input
    keys, in the order the per-step recording makes them, where an int key is a tape node
    (a leaf or op the group shares with the per-step graph) and any other key a node of the
    steps; ``aliases``: tape node -> key of the record that stands for it (o(t), h(t));
    ``grads(tape)``: the per-step gradient norms ``(nodes {key: norm}, edges {(key, key): norm})``
    after ``backward(keep_grads=True)``. Returns the view and tape id -> view id.
    """
    v = _View()
    to_view: dict[int, int] = {}
    n, i = len(tape.ops), 0
    while i < n:
        u = unfolds.get(i)
        if u is None:
            _copy_node(tape, v, i, to_view, tape.inputs[i])
            i += 1
            continue
        local: dict[Any, int] = {}
        at = lambda key: to_view[key] if isinstance(key, int) else local[key]   # noqa: E731
        for key, op, meta, name, ins in u.records():
            if isinstance(key, int):
                _copy_node(tape, v, key, to_view, tape.inputs[key])
                continue
            vid = local[key] = len(v.ops)
            ins = tuple(at(j) for j in ins)
            req = any(v.meta[j][5] for j in ins) if op is not None else meta[5]
            v.ops.append(None if op is None else _OpName(op))
            v.inputs.append(ins)
            v.meta.append(meta[:5] + (req,))
            if name is not None:
                v.names[vid] = name
            if u.src is not None:
                v.src[vid], v.code[vid] = u.src, u.code
        for tid, key in u.aliases.items():
            to_view[tid] = at(key)
        if tape.grad_norms:
            nodes, edges = u.grads(tape)
            for key, g in nodes.items():
                v.grad_norms[at(key)] = g
            for (a, b), g in edges.items():
                if v.meta[at(a)][5]:          # an input that takes no gradient gets no norm
                    v.edge_norms[(at(a), at(b))] = g
        i = u.end
    for (j, k), g in tape.edge_norms.items():
        if j in to_view and k in to_view:     # the edges kept (or redirected to a step's node)
            v.edge_norms[(to_view[j], to_view[k])] = g
    return v, to_view


def _copy_node(tape: Tape, v: _View, i: int, to_view: dict[int, int], ins: tuple) -> None:
    vid = to_view[i] = len(v.ops)
    try:
        v.inputs.append(tuple(to_view[j] for j in ins))
    except KeyError:
        raise ValueError(f"trace: {tape.op_name(i)} (node {i}) reads a node inside a fused op "
                         f"that has no per-step record; record that model per step "
                         f"(tinygraph.nn.per_step())") from None
    v.ops.append(tape.ops[i])
    v.meta.append(tape.meta[i])
    for src, dst in ((tape.names, v.names), (tape.src, v.src), (tape.code, v.code),
                     (tape.value_norms, v.value_norms), (tape.grad_norms, v.grad_norms)):
        if i in src:
            dst[vid] = src[i]
