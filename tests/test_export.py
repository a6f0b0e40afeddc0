"""Export: the schema on every node and edge, networkx and JSON round trips, determinism."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tinygraph as tg
from tinygraph.export import NODE_KEYS

nx = pytest.importorskip("networkx")


def _elman(T=4, seed=0):
    rng = np.random.default_rng(seed)
    U = tg.Parameter(rng.standard_normal((3, 2)) * 0.5, name="U")
    W = tg.Parameter(rng.standard_normal((3, 3)) * 0.5, name="W")
    V = tg.Parameter(rng.standard_normal((2, 3)) * 0.5, name="V")
    h = tg.zeros(3, name="h")
    total = 0.0
    with tg.scope("rnn"):
        for t in range(1, T + 1):
            with tg.step(t):
                x = tg.tensor(rng.standard_normal(2), name="x")
                h = tg.tanh(W @ h + U @ x).named("h")
                o = (V @ h).named("o")
                y = tg.tensor(np.array(t % 2), name="y")
                total = total + tg.cross_entropy(o, y).named("L")
    return total.named("L")


def test_every_node_and_edge_carries_the_schema():
    loss = _elman()
    loss.backward(keep_grads=True)
    g = tg.trace(loss).to_networkx()
    assert g.graph["engine"] == "tinygraph" and g.graph["schema"] == 1
    assert g.graph["loss"] == g.graph["output"] == max(g.nodes)
    for n, d in g.nodes(data=True):
        assert set(NODE_KEYS) <= set(d), n
        assert d["kind"] in ("param", "input", "const", "op")
    for u, v, d in g.edges(data=True):
        assert u < v and isinstance(d["arg"], int) and d["arg"] in d["args"]
    names = {(d["name"], d["step"]) for _, d in g.nodes(data=True) if d["name"]}
    assert {("h", 1), ("o", 4), ("x", 2), ("y", 3), ("L", 2), ("W", None)} <= names
    matmuls_with_w = [d for _, d in g.nodes(data=True) if d["op"] == "matmul" and d["param"] == "W"]
    assert len(matmuls_with_w) == 4
    assert all(d["grad_norm"] is not None and d["grad_norm"] > 0 for _, d in g.nodes(data=True)
               if d["requires_grad"])


def test_json_round_trip_is_equal(tmp_path):
    loss = _elman()
    loss.backward(keep_grads=True)
    g = tg.trace(loss)
    path = tmp_path / "g.json"
    g.save(str(path))
    back = tg.Graph.load(str(path))
    assert back.nodes == g.nodes and back.edges == g.edges and back.attrs == g.attrs
    g1, g2 = g.to_networkx(), back.to_networkx()
    assert nx.utils.graphs_equal(g1, g2)
    # networkx reads the same file
    g3 = nx.node_link_graph(json.loads(path.read_text()), edges="edges")
    assert nx.utils.graphs_equal(g1, g3)


def test_same_program_same_export_byte_for_byte(tmp_path):
    prog = textwrap.dedent("""
        import sys; sys.path.insert(0, %r)
        from test_export import _elman
        import tinygraph as tg
        loss = _elman()
        loss.backward(keep_grads=True)
        print(tg.trace(loss).to_json())
    """ % str(__import__("pathlib").Path(__file__).parent))
    outs = [subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True,
                           check=True).stdout for _ in range(2)]
    assert outs[0] == outs[1] and len(outs[0]) > 1000


def test_trace_only_keeps_what_the_output_depends_on():
    a = tg.tensor([1.0], requires_grad=True)
    b = a * 2
    _unrelated = a * 5
    c = tg.tanh(b)
    g = tg.trace(c)
    assert [n["op"] for n in g.nodes] == ["leaf", "leaf", "mul", "tanh"]


def test_trace_of_a_leaf_raises():
    with pytest.raises(ValueError, match="no graph"):
        tg.trace(tg.tensor([1.0]))


def test_source_lines_and_value_norms_when_recorded():
    x = tg.tensor([3.0, 4.0], requires_grad=True)
    with tg.recording(source=True, values=True):
        y = x * 1.0
    node = tg.trace(y).nodes[-1]
    assert node["src"] == f"tests/test_export.py:{_line_of('y = x * 1.0')}"
    assert node["code"] == "y = x * 1.0"
    assert node["value_norm"] == pytest.approx(5.0)
    z = x * 1.0
    assert tg.trace(z).nodes[-1]["src"] is None and tg.trace(z).nodes[-1]["code"] is None


def test_code_is_the_users_line_for_every_node_of_a_recurrence():
    rng = np.random.default_rng(4)
    W = tg.Parameter(rng.standard_normal((3, 3)), name="W")
    U = tg.Parameter(rng.standard_normal((3, 2)), name="U")
    x = tg.tensor(rng.standard_normal((4, 2)), name="x")
    h = tg.zeros(3, name="h")
    with tg.recording():
        for t in range(4):
            h = tg.tanh(W @ h + U @ x[t])
        loss = h.sum()
    g = tg.trace(loss)
    line = "h = tg.tanh(W @ h + U @ x[t])"
    by_op = {}
    for n in g.nodes:
        by_op.setdefault(n["op"], set()).add((n["src"], n["code"]))
    here = f"tests/test_export.py:{_line_of(line)}"
    for op in ("matmul", "add", "tanh"):
        assert by_op[op] == {(here, line)}, op
    assert by_op["sum"] == {(f"tests/test_export.py:{_line_of('loss = h.sum()')}", "loss = h.sum()")}
    back = tg.Graph.from_dict(json.loads(g.to_json()))
    assert [n["code"] for n in back.nodes] == [n["code"] for n in g.nodes]


# ------------------------------------------------------------------------------------------------
# linear export: checked by structure and by counting, never by the clock
# ------------------------------------------------------------------------------------------------

def _wide(n, repeat=0):
    """getitem x[k] for k < n, then one `stack` of them all (the first `repeat` used twice)."""
    x = tg.tensor(np.arange(n, dtype=float), requires_grad=True, name="x")
    items = [x[k] for k in range(n)]
    return tg.stack(items + items[:repeat]).sum()


def test_a_stack_of_20000_inputs_traces_with_one_edge_per_input():
    n, rep = 20_000, 50
    g = tg.trace(_wide(n, rep))
    assert len(g.nodes) == 1 + n + 2
    assert len(g.edges) == n + n + 1
    stack = len(g.nodes) - 2
    into = [e for e in g.edges if e["target"] == stack]
    assert [e["source"] for e in into] == list(range(1, n + 1))      # in argument order
    assert [e["args"] for e in into[:rep]] == [[k, n + k] for k in range(rep)]
    assert all(e["args"] == [e["arg"]] for e in into[rep:])
    G = g.to_networkx()
    assert G.number_of_nodes() == len(g.nodes) and G.number_of_edges() == len(g.edges)
    assert G.in_degree(stack) == n and G.edges[1, stack]["args"] == [0, n]


def _line_events(fn):
    """How many Python lines `fn` executes (in any module): a machine-independent cost."""
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    old = sys.gettrace()
    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(old)
    return count


@pytest.mark.parametrize("repeat", [0, 1], ids=["distinct-inputs", "inputs-used-twice"])
def test_trace_and_to_networkx_cost_grows_linearly_with_a_nodes_inputs(repeat):
    costs = {}
    for n in (500, 2000):
        loss = _wide(n, repeat * n)
        g = tg.trace(loss)
        costs[n] = (_line_events(lambda: tg.trace(loss)), _line_events(g.to_networkx))
    for k in range(2):
        # 4x the inputs: 4x the lines run (a quadratic scan would run 16x)
        assert costs[2000][k] < 4.4 * costs[500][k], costs


def _line_of(text):
    src = open(__file__).read().splitlines()
    return next(i + 1 for i, line in enumerate(src) if line.strip() == text)


def test_shape_one_is_exported_as_ints_after_a_need_tuple_of_true():
    # (True,) == (1,): the record path once interned shapes and `need` tuples in one table
    x = tg.tensor([2.0], requires_grad=True)
    y = tg.tanh(x)                       # need == (True,) is interned first
    z = tg.stack([y.sum()])              # shape (1,)
    g = tg.trace(z.sum())
    shapes = [n["shape"] for n in g.nodes if n["op"] == "stack"]
    assert shapes == [[1]] and type(shapes[0][0]) is int


# ------------------------------------------------------------------------------------------------
# a fused recurrence (nn.RNN(fused=True)) exports as the per-step graph
# ------------------------------------------------------------------------------------------------

def _rnn_graph(fused, output="every", ids=True, loss="sequence", keep=False, K=3, T=4):
    """The exported graph of one nn.RNN run and loss, fused or recorded per step."""
    from tinygraph import nn
    rng = np.random.default_rng(5)
    B, D, H = 2, 4, 5
    m = nn.RNN(D, H, K, output=output, rng=1, fused=fused)
    x = rng.integers(0, D, (B, T)) if ids else rng.standard_normal((B, T, D))
    y = rng.integers(0, K or 1, (B, T))
    out = m(x, state=rng.standard_normal((B, H)))
    if K is None:
        total = (out.h[-1] * out.h[-1]).sum()
    elif loss == "sequence":
        total = nn.sequence_loss(out.o, y[:, T - len(out.o):])
    elif output == "last":
        total = tg.cross_entropy(out.last, y[:, 0])
    else:                                   # a hand-written per-step loss, on some steps only
        total = sum(tg.cross_entropy(o, y[:, t]).named("L") for t, o in enumerate(out.o)
                    if t != 1)
    if keep:
        total.backward(keep_grads=True)
    return tg.trace(total)


def _without_source(g):
    d = g.to_dict()
    for n in d["nodes"]:                    # the line that recorded a node: fused.py vs rnn.py
        n.pop("src"), n.pop("code")
    return d


FUSED_CASES = [dict(), dict(ids=False), dict(loss="per-step"), dict(output="last"),
               dict(output="last", loss="per-step"), dict(K=None), dict(T=1)]


@pytest.mark.parametrize("case", FUSED_CASES, ids=lambda c: ",".join(map(str, c.values())) or "every")
def test_a_fused_rnn_exports_the_per_step_graph_node_for_node(case):
    """Equal: every node (op, kind, name, shape, dtype, scope, step, param, requires_grad,
    value_norm, grad_norm), every edge (source, target, arg, args), the graph attributes; only
    src / code may differ (recorded only under tg.record_source, both None here)."""
    fused, step = _rnn_graph(True, **case), _rnn_graph(False, **case)
    assert "elman_scan" not in {n["op"] for n in fused.nodes}
    assert fused.to_json() == step.to_json()
    assert _without_source(fused) == _without_source(step)


@pytest.mark.parametrize("case", FUSED_CASES, ids=lambda c: ",".join(map(str, c.values())) or "every")
def test_a_fused_rnn_exports_the_per_step_gradient_norms(case):
    fused, step = _rnn_graph(True, keep=True, **case), _rnn_graph(False, keep=True, **case)
    assert len(fused.nodes) == len(step.nodes) and len(fused.edges) == len(step.edges)
    kept = sum(n["grad_norm"] is not None for n in step.nodes + step.edges)
    assert kept > len(step.nodes) // 2
    for a, b in list(zip(fused.nodes, step.nodes)) + list(zip(fused.edges, step.edges)):
        ga, gb = a.pop("grad_norm"), b.pop("grad_norm")
        a.pop("src", None), a.pop("code", None), b.pop("src", None), b.pop("code", None)
        assert a == b
        assert (ga is None) == (gb is None), a
        if gb is not None:
            assert abs(ga - gb) <= 1e-12 * max(abs(gb), 1e-300), (a, ga, gb)


def test_a_fused_rnn_draws_the_same_dot():
    viz = pytest.importorskip("viz")
    fused, step = _rnn_graph(True, keep=True), _rnn_graph(False, keep=True)
    F, S = fused.to_networkx(), step.to_networkx()
    assert viz.unfolded(F, max_steps=None).source == viz.unfolded(S, max_steps=None).source
    assert viz.folded(F).source == viz.folded(S).source
