"""viz.names: one variable drawn once, and never two different things under one label."""
from __future__ import annotations

import numpy as np
import pytest

import graphs
import viz
from viz.names import prepare, subscript


@pytest.mark.parametrize("scopes, expected", [
    (["deeprnn/layer1", "deeprnn/layer2"], ["1", "2"]),
    (["seq2seq/encoder/cell", "seq2seq/decoder"], ["enc", "dec"]),
    (["birnn/fwd", "birnn/bwd"], ["fwd", "bwd"]),
    (["", "rnn"], ["", "rnn"]),
    (["a/encoder", "a/encoding"], ["encoder", "encoding"]),  # 3 letters would not tell apart
])
def test_subscript_is_the_first_scope_component_that_differs(scopes, expected):
    assert [subscript(scopes)[s] for s in scopes] == expected


def _labels(G):
    """param labels per node, and (name, step) -> scopes of the step-tagged variables."""
    params = [d["name"] for _, d in G.nodes(data=True) if d["kind"] == "param"]
    seen: dict = {}
    for _, d in G.nodes(data=True):
        if d["kind"] != "param" and d["name"] and d["step"] is not None:
            seen.setdefault((d["name"], d["step"]), set()).add(d["scope"])
    return params, seen


@pytest.mark.parametrize("arch", sorted(graphs.ARCHITECTURES))
def test_no_two_parameters_or_variables_share_a_label(arch):
    G = prepare(graphs.ARCHITECTURES[arch](4))
    params, seen = _labels(G)
    assert len(params) == len(set(params))
    assert all(len(scopes) == 1 for scopes in seen.values())
    # the figures draw exactly these names: the folded view's per-step roles are distinct too
    # (the total L outside the steps is the book's same L: it is no second variable)
    F = viz.fold(G, level="op")
    roles = {(d["name"], d["scope"]) for _, d in F.nodes(data=True)
             if d["name"] and (d["steps"] or d["kind"] == "param")}
    assert len({n for n, _ in roles}) == len(roles)


def test_twin_layers_and_chains_get_distinct_labels():
    stacked = prepare(graphs.deep(3, "stacked"))
    names = {d["name"] for _, d in stacked.nodes(data=True) if d["kind"] == "param"}
    assert {"W_1", "W_2", "U_1", "U_2"} <= names
    assert {"h_1", "h_2"} <= {d["name"] for _, d in stacked.nodes(data=True)}
    bi = prepare(graphs.bidirectional(3))
    assert {"W_fwd", "W_bwd", "U_fwd", "U_bwd"} <= {d["name"] for _, d in bi.nodes(data=True)}
    # ops name the parameter they read with its new label, so edges say W_fwd / W_bwd
    reads = {d["param"] for _, d in bi.nodes(data=True) if d["param"]}
    assert not reads & {"W", "U"}


def test_prepare_leaves_the_callers_graph_alone_and_is_idempotent():
    G = graphs.deep(3, "stacked")
    before = {n: dict(d) for n, d in G.nodes(data=True)}
    once = prepare(G)
    assert {n: dict(d) for n, d in G.nodes(data=True)} == before
    twice = prepare(viz.load(once))
    assert {n: d["name"] for n, d in twice.nodes(data=True)} == \
        {n: d["name"] for n, d in once.nodes(data=True)}


def _teacher_forced(T=4):
    tg = pytest.importorskip("tinygraph")
    from tinygraph import nn
    rng = np.random.default_rng(0)
    net = nn.JordanRNN(2, 5, 3, rng=0)
    x, y = rng.standard_normal((1, T, 2)), rng.integers(0, 3, (1, T))
    out = net(x, y0=np.array([0]), y=y, mode="teacher")
    loss = nn.sequence_loss(out.o, y)
    loss.backward(keep_grads=True)
    return tg.trace(loss)


def test_teacher_forcing_draws_each_y_once_feeding_its_loss_and_the_next_state():
    G = prepare(_teacher_forced(4))
    ys = {}
    for n, d in G.nodes(data=True):
        if d["name"] == "y":
            ys.setdefault(d["step"], []).append(n)
    assert sorted(ys) == [0, 1, 2, 3, 4] and all(len(v) == 1 for v in ys.values())
    V = viz.variable_level(G)
    for t in (1, 2, 3):
        y = ys[t][0]
        succ = {(V.nodes[c]["name"], V.nodes[c]["step"]) for c in V.successors(y)}
        assert succ == {("L", t), ("h", t + 1)}
    U = viz.unfolded_graph(G, max_steps=None)
    assert sum(1 for _, d in U.nodes(data=True) if d["name"] == "y") == 5


def test_a_start_token_and_the_targets_are_one_sequence_y():
    # y(0) is read in the model's scope, y(1..T) outside it: no step in common, one name
    G = prepare(_teacher_forced(3))
    assert {d["name"] for _, d in G.nodes(data=True) if (d["name"] or "").startswith("y")} \
        == {"y"}
