"""viz.infer: plain loops recorded without tg.step / .named draw the annotated pictures.

Each architecture is written twice below, as a user writes it: a plain loop, and the same loop
annotated with ``tg.step`` and ``.named`` (every variable assigned in a step named after
itself; the running sum ``total`` named once, after the loop). Recorded
with ``tg.recording(source=True)``, the plain loop's names come from these very lines (read back
with linecache from the ``src`` attribute), so both must give the same folded and unfolded
graphs, node for node and edge for edge, for any T.
"""
from __future__ import annotations

import re
from functools import partial

import networkx as nx
import numpy as np
import pytest

import tinygraph as tg
import viz
from viz.infer import NOTE_GUESSED, NOTE_UNDECIDED, infer, source_text

H, D, K = 4, 3, 2


def _params(seed: int):
    rng = np.random.default_rng(seed)
    P = {k: tg.Parameter(rng.normal(size=s) * 0.5, name=k) for k, s in
         (("W", (H, H)), ("U", (H, D)), ("V", (K, H)), ("R", (H, K)), ("b", (H,)), ("c", (K,)))}
    return P, rng


def _data(rng, T):
    return tg.tensor(rng.normal(size=(T, D))), tg.tensor(rng.integers(0, K, size=T))


def _setup(seed, T, names):
    """The parameters ``names`` (a string of letters), x (T, D) and y (T,), and a fresh tape."""
    P, rng = _params(seed)
    x, y = _data(rng, T)
    tg.new_graph()
    return [P[k] for k in names] + [x, y]


def _traced(out):
    out.backward(keep_grads=True)
    return tg.trace(out).to_networkx()


# -- the architectures, plain and annotated ----------------------------------------------------
def rnn_plain(T, source=True, carry="h"):
    """Fig. 10.3 (``carry="h"``: h(t-1) -> h(t) through W) or fig. 10.4 (``carry="o"``: the
    output o(t-1) -> h(t) through R), a loss at every step."""
    W, R, U, V, b, c, x, y = _setup(1, T, "WRUVbc")
    with tg.recording(source=source):
        h, o = tg.zeros(H), tg.zeros(K)
        total = 0
        for t in range(T):
            h = tg.tanh((W @ h if carry == "h" else R @ o) + U @ x[t] + b)
            o = V @ h + c
            L = tg.cross_entropy(o, y[t])
            total = total + L
    return _traced(total)


def rnn_annotated(T, carry="h"):
    W, R, U, V, b, c, x, y = _setup(1, T, "WRUVbc")
    with tg.step(0):
        h, o = tg.zeros(H).named("h"), tg.zeros(K).named("o")
    total = 0
    for t in range(T):
        with tg.step(t + 1):
            h = tg.tanh((W @ h if carry == "h" else R @ o) + U @ x[t].named("x") + b).named("h")
            o = (V @ h + c).named("o")
            L = tg.cross_entropy(o, y[t].named("y")).named("L")
        total = total + L
    total.named("total")  # the running sum, named once where it leaves the loop
    return _traced(total)


def single_output_plain(T, source=True):
    """Fig. 10.5: one output and one loss, after the loop."""
    W, U, V, b, c, x, y = _setup(3, T, "WUVbc")
    with tg.recording(source=source):
        h = tg.zeros(H)
        for t in range(T):
            h = tg.tanh(W @ h + U @ x[t] + b)
        o = V @ h + c
        L = tg.cross_entropy(o, y[0])
    return _traced(L)


def single_output_annotated(T):
    W, U, V, b, c, x, y = _setup(3, T, "WUVbc")
    with tg.step(0):
        h = tg.zeros(H).named("h")
    for t in range(T):
        with tg.step(t + 1):
            h = tg.tanh(W @ h + U @ x[t].named("x") + b).named("h")
    o = (V @ h + c).named("o")
    L = tg.cross_entropy(o, y[0].named("y")).named("L")
    return _traced(L)


ARCHS = {"elman": (rnn_plain, rnn_annotated),
         "jordan": (partial(rnn_plain, carry="o"), partial(rnn_annotated, carry="o")),
         "single_output": (single_output_plain, single_output_annotated)}


# -- comparison helpers ------------------------------------------------------------------------
def _nodes(G):
    keys = ("op", "kind", "name", "step", "scope", "param", "shape")
    return {n: tuple(str(d.get(k)) for k in keys) for n, d in G.nodes(data=True)}


def _edges(G, keys):
    return {(u, v): tuple(str(d.get(k)) for k in keys) for u, v, d in G.edges(data=True)}


def _same_structure(A, B, node_keys=None, edge_keys=()):
    """Same node ids with the same attributes, same edges with the same attributes."""
    na = {n: tuple(str(d.get(k)) for k in node_keys) for n, d in A.nodes(data=True)} \
        if node_keys else _nodes(A)
    nb = {n: tuple(str(d.get(k)) for k in node_keys) for n, d in B.nodes(data=True)} \
        if node_keys else _nodes(B)
    assert na == nb
    assert _edges(A, edge_keys) == _edges(B, edge_keys)


# -- the plain loop draws the annotated pictures ---------------------------------------------
@pytest.mark.parametrize("T", [3, 30])
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_plain_loop_with_source_draws_the_annotated_pictures(arch, T):
    plain, annotated = ARCHS[arch]
    P, A = viz.load(plain(T)), viz.load(annotated(T))
    assert P.graph["inferred"] == {"steps": T, "names": "source"}
    assert "inference_note" not in P.graph
    _same_structure(P, A)  # the recording itself: same steps, names, kinds
    for level in ("variable", "op"):
        _same_structure(viz.fold(P, level), viz.fold(A, level),
                        ("name", "op", "kind", "steps", "count", "initial"),
                        ("same", "delay", "lags", "label", "detached"))
        _same_structure(viz.unfolded_graph(P, level), viz.unfolded_graph(A, level),
                        ("name", "op", "step", "column", "row"), ("delay", "label"))
        # the same drawing; only the hover text differs (the plain loop recorded its source)
        assert _drawn(viz.folded(P, level=level)) == _drawn(viz.folded(A, level=level))
        assert _drawn(viz.unfolded(P, level=level)) == _drawn(viz.unfolded(A, level=level))


def _drawn(fig) -> str:
    """The DOT text without the tooltips (which say the source line when it was recorded)."""
    return re.sub(r' tooltip="(?:[^"\\]|\\.)*"', "", fig.source)


@pytest.mark.parametrize("source", [True, False])
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_folded_view_of_a_plain_loop_does_not_depend_on_T(arch, source):
    plain, _ = ARCHS[arch]
    short, long = plain(3, source=source), plain(30, source=source)
    for level in ("variable", "op"):
        assert viz.folded(short, level=level).source == viz.folded(long, level=level).source


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_without_source_roles_are_named_from_the_ops(arch):
    T = 5
    G = viz.load(ARCHS[arch][0](T, source=False))
    assert G.graph["inferred"] == {"steps": T, "names": "ops"}
    assert G.graph["inference_note"] == NOTE_GUESSED
    V = viz.unfolded_graph(G, max_steps=None)
    by_name: dict = {}
    for _, d in V.nodes(data=True):
        if d["step"] is not None:
            by_name.setdefault(d["name"], []).append((d["step"], d["column"]))
    # one h and one x per step, each in its own column; o and L per step where the loop has them
    for name in ("h", "x"):
        steps = sorted(s for s, _ in by_name[name] if s >= 1)
        assert steps == list(range(1, T + 1))
        assert len({c for s, c in by_name[name] if s >= 1}) == T
    if arch != "single_output":
        assert sorted(s for s, _ in by_name["L"]) == list(range(1, T + 1))
        assert {s for s, _ in by_name["o"]} >= set(range(1, T + 1))
    dot = viz.unfolded(G, max_steps=None).source
    assert f"<B>h</B><SUP>({T})</SUP>" in dot and "<B>x</B><SUP>(1)</SUP>" in dot
    # diagnose follows the recurrence as in the annotated loop (the variable a delay enters)
    annotated = viz.recurrent_series(ARCHS[arch][1](T))
    assert [s.variable for s in viz.recurrent_series(G)] == [s.variable for s in annotated]


def test_diagnose_follows_the_recurrence_of_an_unnamed_loop():
    """The unnamed plain loop gives the annotated loop's series, norm for norm."""
    plain = viz.diagnose(rnn_plain(12, source=False))
    ann = viz.diagnose(rnn_annotated(12))
    assert [s.variable for s in plain.series] == ["h"]
    assert plain.series[0].steps == tuple(range(1, 13))
    np.testing.assert_allclose(plain.series[0].norms, ann.series[0].norms, rtol=1e-12)
    assert plain.verdict == ann.verdict
    assert "nothing flows through time" not in str(plain)


def test_source_names_from_the_code_attribute():
    """The export's ``code`` attribute is used before the file (here: a file that is gone)."""
    G = rnn_plain(4)
    lines = {}
    for n, d in G.nodes(data=True):
        if d["src"]:
            lines[n] = source_text(d)
            d["src"] = "gone/away.py:" + d["src"].rpartition(":")[2]
            d.pop("code", None)  # the export records it: drop it to test the file-less guess
    assert viz.load(G).graph["inferred"]["names"] == "ops"  # no file, no code: guessed
    for n, text in lines.items():
        G.nodes[n]["code"] = text.replace("h = ", "state = ").replace("(W @ h", "(W @ state")
    L = viz.load(G)
    assert L.graph["inferred"]["names"] == "source"
    names = {d["name"] for _, d in L.nodes(data=True) if d["kind"] != "param"}
    assert {"state", "o", "L", "total", "x", "y"} <= names and "h" not in names


def test_source_names_from_the_file_when_no_code():
    G = rnn_plain(4)
    for _, d in G.nodes(data=True):
        d.pop("code", None)  # the export records it: drop it to test reading the file
    assert source_text(G.nodes[max(G)]) == "total = total + L"
    L = viz.load(G)
    assert L.graph["inferred"]["names"] == "source"
    tanh = [d for _, d in L.nodes(data=True) if d["op"] == "tanh"]
    assert [d["name"] for d in tanh] == ["h"] * 4 and [d["step"] for d in tanh] == [1, 2, 3, 4]
    h0 = [d for _, d in L.nodes(data=True) if d["kind"] == "input" and d["step"] == 0]
    assert [d["name"] for d in h0] == ["h"]  # the state made before the loop is h(0)


def test_an_irregular_repetition_is_left_untagged_with_a_note():
    """An inner loop of varying length has no one loop body: nothing is tagged, and the
    figure says so and names the fix."""
    P, rng = _params(4)
    W, U = P["W"], P["U"]
    x, _ = _data(rng, 6)
    tg.new_graph()
    h = tg.zeros(H)
    for t in range(6):
        h = tg.tanh(U @ x[t] + h)
        for _ in range(t % 3):
            h = tg.tanh(W @ h)
    G = viz.load(tg.trace(h.sum()).to_networkx())
    assert all(d["step"] is None for _, d in G.nodes(data=True))
    assert G.graph["inference_note"] == NOTE_UNDECIDED
    assert "tg.step" in NOTE_UNDECIDED and ".named" in NOTE_UNDECIDED


def test_annotated_and_feed_forward_graphs_are_left_alone():
    A = viz.load(rnn_annotated(3))
    assert "inferred" not in A.graph and "inference_note" not in A.graph
    W = tg.Parameter(np.eye(3), name="W")
    tg.new_graph()
    out = tg.tanh(W @ tg.ones(3)).sum()
    F = viz.load(tg.trace(out).to_networkx())
    assert "inferred" not in F.graph and "inference_note" not in F.graph


def test_infer_leaves_the_callers_graph_untouched():
    G = rnn_plain(3, source=False)
    before = {n: dict(d) for n, d in G.nodes(data=True)}
    viz.load(G)
    assert {n: dict(d) for n, d in G.nodes(data=True)} == before
    assert infer(nx.DiGraph()).number_of_nodes() == 0


def test_teacher_forcing_reads_the_target_of_the_step_before():
    """Fig. 10.6 (train time) as a plain loop: y(t-1) -> h(t) are delay edges, and the
    zeros before the loop are y(0)."""
    P, rng = _params(5)
    R, U, V = P["R"], P["U"], P["V"]
    x, _ = _data(rng, 4)
    y = tg.tensor(rng.normal(size=(4, K)))
    tg.new_graph()
    prev, total = tg.zeros(K), 0
    for t in range(4):
        h = tg.tanh(R @ prev + U @ x[t])
        yt = y[t]
        total = total + tg.mse_loss(V @ h, yt)
        prev = yt
    G = viz.load(tg.trace(total).to_networkx())
    assert G.graph["inferred"] == {"steps": 4, "names": "ops"}
    ys = sorted(d["step"] for _, d in G.nodes(data=True) if d["name"] == "y")
    assert ys == [0, 1, 2, 3, 4]
    F = viz.fold(G)
    (y_role,) = [r for r, d in F.nodes(data=True) if d["name"] == "y"]
    (h_role,) = [r for r, d in F.nodes(data=True) if d["name"] == "h"]
    assert F.nodes[y_role]["steps"] == [0, 1, 2, 3, 4]
    assert F.edges[y_role, h_role]["delay"] == 4 and F.edges[y_role, h_role]["label"] == "R"


def test_a_first_iteration_without_state_and_a_sliced_input():
    """``h = None`` before the loop (iteration 1 has no W @ h) and an input that takes
    gradients (``x[t]`` is a recorded getitem): still one step per iteration."""
    P, rng = _params(6)
    W, U, V = P["W"], P["U"], P["V"]
    x = tg.tensor(rng.normal(size=(5, D)), requires_grad=True)
    tg.new_graph()
    with tg.recording(source=True):
        h = None
        losses = []
        for t in range(5):
            a = U @ x[t]
            if h is not None:
                a = a + W @ h
            h = tg.tanh(a)
            losses.append(tg.mse_loss(V @ h, np.zeros(K)))
        loss = tg.stack(losses).sum()
    loss.backward(keep_grads=True)
    G = viz.load(tg.trace(loss).to_networkx())
    assert G.graph["inferred"] == {"steps": 5, "names": "source"}
    steps = {d["op"]: set() for _, d in G.nodes(data=True)}
    for _, d in G.nodes(data=True):
        steps[d["op"]].add(d["step"])
    assert steps["getitem"] == steps["tanh"] == steps["mse_loss"] == {1, 2, 3, 4, 5}
    assert steps["stack"] == steps["sum"] == {None}
    names = {d["op"]: d["name"] for _, d in G.nodes(data=True)}
    assert names["tanh"] == "h" and names["sum"] == "loss" and names["getitem"] is None
    (x,) = [d for _, d in G.nodes(data=True) if d["kind"] == "input"]
    assert x["name"] == "x" and x["step"] is None  # the whole sequence, sliced at every step
    # the carried state is h: the delay edge leaves h(t-1) and enters a(t) = U x(t) + W h(t-1);
    # issue 9 names a recurrent variable by the state it carries (the edge's source), not by
    # the role the edge enters (a), so the flow and the verdict are measured on h
    F = viz.fold(G)
    delays = [(F.nodes[u]["name"], F.nodes[v]["name"]) for u, v, e in F.edges(data=True)
              if e["delay"]]
    assert delays == [("h", "a")]
    assert [s.variable for s in viz.recurrent_series(G)] == ["h"]


@pytest.mark.parametrize("leaves", [4, 8])
def test_a_tree_recursed_over_is_not_taken_for_a_sequence(leaves):
    rng = np.random.default_rng(7)
    W, U = (tg.Parameter(rng.normal(size=(H, H)), name=k) for k in "WU")
    level = [tg.tensor(rng.normal(size=H)) for _ in range(leaves)]
    tg.new_graph()
    while len(level) > 1:
        level = [tg.tanh(W @ level[i] + U @ level[i + 1]) for i in range(0, len(level), 2)]
    G = viz.load(tg.trace(level[0].sum()).to_networkx())
    assert all(d["step"] is None for _, d in G.nodes(data=True))
    assert G.graph["inference_note"] == NOTE_UNDECIDED


def test_a_second_loop_is_left_untagged_and_said_so():
    """An encoder loop, then a decoder loop with its own weights: the first gets its steps,
    the second is not drawn in the encoder's columns, and the note says to tag it."""
    W, U, V, b, c, x, y = _setup(9, 6, "WUVbc")
    rng = np.random.default_rng(9)
    W2 = tg.Parameter(rng.normal(size=(H, H)), name="W2")
    h = tg.zeros(H)
    for t in range(6):
        h = tg.tanh(W @ h + U @ x[t] + b)
    total = 0
    for t in range(4):
        h = tg.tanh(W2 @ h)
        total = total + tg.cross_entropy(V @ h + c, y[t])
    G = viz.load(tg.trace(total).to_networkx())
    assert G.graph["inferred"]["steps"] == 6
    assert {d["step"] for _, d in G.nodes(data=True) if d["param"] == "W2"} == {None}
    assert "tag the other loops with tg.step(t)" in G.graph["inference_note"]


def test_a_feed_forward_stack_is_no_loop():
    """Repeated ops that read no shared parameter (one relu per layer) are not time steps."""
    rng = np.random.default_rng(8)
    Ws = [tg.Parameter(rng.normal(size=(H, H)), name=f"W{i}") for i in range(3)]
    tg.new_graph()
    h = tg.ones(H)
    for W in Ws:
        h = tg.relu(W @ h)
    G = viz.load(tg.trace(h.sum()).to_networkx())
    assert all(d["step"] is None for _, d in G.nodes(data=True))
    assert "inferred" not in G.graph and "inference_note" not in G.graph


def test_the_plain_loop_demo():
    from demos.plain_loop import record_plain_loop
    g, score = record_plain_loop(T=5, train_steps=150)
    G = viz.load(g)
    assert G.graph["inferred"]["steps"] == 5
    assert float(score.split()[2]) > 0.6  # learned: chance is 0.5
    P = viz.fold(G)
    assert sorted(d["name"] for _, d in P.nodes(data=True)) in (
        ["L", "h", "h", "o", "total", "x", "y"],  # names read from demos/plain_loop.py
        ["L", "L", "h", "h", "o", "x", "y"])      # run from elsewhere: names from the ops


@pytest.mark.slow
def test_a_plain_loop_of_1e5_steps():
    """Inference is iterative and linear: a 10^5-step plain loop gets its steps, and its
    folded graph is the one of a 3-step loop."""
    T = 100_000
    long, short = single_output_plain(T, source=False), single_output_plain(3, source=False)
    G = viz.load(long)
    assert G.graph["inferred"] == {"steps": T, "names": "ops"}
    h = [d["step"] for _, d in G.nodes(data=True) if d["name"] == "h"]
    assert h == list(range(0, T + 1))
    assert viz.folded(G).source == viz.folded(short).source
    V = viz.unfolded_graph(G, max_steps=6)
    assert sum(1 for _, d in V.nodes(data=True) if d["kind"] == "ellipsis") > 0
