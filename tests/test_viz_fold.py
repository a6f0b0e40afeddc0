"""viz.fold and viz.levels on every architecture of the seed (hand-built schema graphs)."""
from __future__ import annotations

import re

import networkx as nx
import pytest

import graphs
import viz
from viz.fold import role_keys
from viz.levels import variable_level

ARCHS = sorted(graphs.ARCHITECTURES)


def names(F, r):
    return F.nodes[r]["name"] or F.nodes[r]["op"]


def delay_edges(F):
    return sorted((names(F, u), names(F, v), e["label"]) for u, v, e in F.edges(data=True)
                  if e["delay"])


def structure(F):
    """Everything of a folded graph that must not depend on T."""
    nodes = [(r, d["name"], d["op"], d["scope"], d["kind"]) for r, d in sorted(F.nodes(data=True))]
    edges = [(u, v, e["label"], bool(e["same"]), bool(e["delay"]), e["detached"])
             for u, v, e in sorted(F.edges(data=True))]
    return nodes, edges


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("level", ["variable", "op"])
def test_folded_graph_is_the_same_for_T3_and_T300(arch, level):
    small = viz.fold(graphs.ARCHITECTURES[arch](3), level=level)
    big = viz.fold(graphs.ARCHITECTURES[arch](300), level=level)
    assert structure(small) == structure(big)
    assert viz.folded(graphs.ARCHITECTURES[arch](3), level=level).source == \
        viz.folded(graphs.ARCHITECTURES[arch](300), level=level).source


EXPECTED_DELAYS = {  # variable level: (source, target, parameter) of every recurrent edge
    "elman": [("h", "h", "W")],
    "jordan": [("o", "h", "W")],
    "teacher_forcing": [("y", "h", "W")],
    "single_output": [("h", "h", "W")],
    "bidirectional": [("g", "g", "W_bwd"), ("h", "h", "W_fwd")],
    "seq2seq": [("h_dec", "h_dec", "W_dec"), ("h_enc", "h_enc", "W_enc"), ("y", "h_dec", "R")],
    "deep_stacked": [("h_1", "h_1", "W_1"), ("h_2", "h_2", "W_2")],
    "deep_transition": [("h", "a", "W1")],
    "deep_skip": [("h", "a", "W1"), ("h", "h", "Ws")],
    "tree": [("h", "h", "W")],
    "dynamical": [("s", "s", "W")],
}


@pytest.mark.parametrize("arch", ARCHS)
def test_recurrent_edges_and_their_parameters(arch):
    F = viz.fold(graphs.ARCHITECTURES[arch](6))
    assert delay_edges(F) == EXPECTED_DELAYS[arch]


def test_elman_variable_level_is_the_book_figure():
    F = viz.fold(graphs.elman(5))
    # one L: the total joins the per-step L(t), as in the book
    assert sorted(names(F, r) for r in F) == ["L", "h", "o", "x", "y", "yhat"]
    edges = {(names(F, u), names(F, v)): e["label"] for u, v, e in F.edges(data=True)}
    assert edges[("x", "h")] == "U" and edges[("h", "o")] == "V" and edges[("h", "h")] == "W"
    assert [names(F, r) for r in nx.nodes_with_selfloops(F)] == ["h"]
    h = next(r for r in F if names(F, r) == "h")
    assert F.nodes[h]["count"] == 5 and F.nodes[h]["steps"] == [1, 2, 3, 4, 5]
    assert F.edges[h, h]["delay"] == 4 and F.edges[h, h]["lags"] == [1]


def test_no_exit_copy_the_last_state_folds_with_the_others():
    F = viz.fold(graphs.single_output(7))
    hs = [r for r in F if F.nodes[r]["name"] == "h"]
    assert len(hs) == 1 and F.nodes[hs[0]]["count"] == 7
    o = next(r for r in F if F.nodes[r]["name"] == "o")
    assert F.has_edge(hs[0], o)  # the read-out leaves the loop node itself


def test_bidirectional_loops_run_opposite_ways():
    F = viz.fold(graphs.bidirectional(5))
    lags = {names(F, u): e["lags"] for u, v, e in F.edges(data=True) if e["delay"]}
    assert lags == {"h": [1], "g": [-1]}


def test_seq2seq_two_loops_joined_by_the_context():
    F = viz.fold(graphs.seq2seq(4, T_out=6))
    C = next(r for r in F if F.nodes[r]["name"] == "C")
    enc = [u for u in F.predecessors(C)]
    dec = [v for v in F.successors(C)]
    assert [F.nodes[r]["scope"] for r in enc] == ["encoder"]
    assert [F.nodes[r]["scope"] for r in dec] == ["decoder"]
    assert F.has_edge(enc[0], enc[0]) and F.has_edge(dec[0], dec[0])
    assert not F.edges[enc[0], C]["delay"]  # h(T) -> C is not a delay edge


def test_context_tagged_with_the_encoders_last_step_is_no_recurrence():
    # C made at the encoder's step T and read by every decoder step, one of which is also T:
    # the coincidence must not put encoder and decoder on one time axis
    for T, T_out in ((4, 6), (5, 5), (3, 8)):
        G = graphs.seq2seq(T, T_out=T_out, context_step=True)
        F = viz.fold(G)
        C = next(r for r in F if F.nodes[r]["name"] == "C")
        assert all(not F.edges[C, v]["delay"] for v in F.successors(C)), (T, T_out)
        assert not F.has_edge(C, C)
        dec = [v for v in F.successors(C) if F.nodes[v]["scope"] == "decoder"]
        assert len(dec) == 1 and F.has_edge(dec[0], dec[0])
    assert viz.folded(graphs.seq2seq(4, 6, context_step=True)).source == \
        viz.folded(graphs.seq2seq(9, 3, context_step=True)).source


def test_recursive_net_one_composition_node_with_a_self_loop():
    for leaves in (4, 16):
        F = viz.fold(graphs.tree(leaves))
        comp = [r for r in F if F.nodes[r]["name"] == "h"]
        assert len(comp) == 1
        assert F.has_edge(comp[0], comp[0]) and F.edges[comp[0], comp[0]]["label"] == "W"
        assert F.nodes[comp[0]]["count"] == leaves - 1
        xs = [r for r in F if F.nodes[r]["name"] == "x"]
        assert len(xs) == 1 and F.nodes[xs[0]]["count"] == leaves


def test_op_level_keeps_every_op_and_parameter_once():
    G = graphs.elman(4)
    F = viz.fold(G, level="op")
    params = sorted(F.nodes[r]["name"] for r in F if F.nodes[r]["kind"] == "param")
    assert params == ["U", "V", "W", "b", "c"]
    matmuls = [r for r in F if F.nodes[r]["op"] == "matmul"]
    assert sorted(F.nodes[r]["param"] for r in matmuls) == ["U", "V", "W"]
    W_mm = next(r for r in matmuls if F.nodes[r]["param"] == "W")
    into = [(names(F, u), e["delay"]) for u, _, e in F.in_edges(W_mm, data=True)]
    assert ("h", 3) in into  # h(t-1) -> matmul(W) at steps 2..4


def test_truncated_bptt_marks_cut_edges():
    V = variable_level(graphs.elman(6, detach_every=2))
    hh = [(u, v) for u, v, e in V.edges(data=True)
          if V.nodes[u]["name"] == V.nodes[v]["name"] == "h"]
    cut = [V.nodes[v]["step"] for u, v in hh if V.edges[u, v]["detached"]]
    assert cut == [3, 5]
    assert len(hh) == 5


def test_variable_level_labels_use_weights_not_biases():
    V = variable_level(graphs.elman(2))
    e = next(e for u, v, e in V.edges(data=True) if V.nodes[u]["name"] == "h"
             and V.nodes[v]["name"] == "o")
    assert e["params"] == ["V", "c"] and e["label"] == "V"


def test_side_branch_parameter_expressions_label_the_edge():
    # h(t) = tanh(h(t-1) @ transpose(W)), the way tinygraph.nn writes it
    b = graphs.Builder()
    prev = b.input("x")
    for t in (1, 2, 3):
        b.scope, b.step = "cell", t
        WT = b.op("transpose", b.param("W"))
        prev = b.op("tanh", b.op("matmul", prev, WT), name="h")
    V = variable_level(b.G)
    assert sorted(e["label"] for _, _, e in V.edges(data=True)) == ["W", "W", "W"]


def test_untagged_accumulation_chain_folds():
    def chain(T):
        b = graphs.Builder()
        total = None
        for t in range(1, T + 1):
            b.scope, b.step = "rnn", t
            L = b.op("tanh", b.input("x"), name="L")
            b.scope, b.step = "", None
            total = L if total is None else b.op("add", total, L)
        return b.G
    assert structure(viz.fold(chain(3), "op")) == structure(viz.fold(chain(40), "op"))


def test_role_keys_separate_positions_within_a_step():
    keys = role_keys(viz.load(graphs.elman(3)))
    G = graphs.elman(3)
    adds_step2 = [n for n, d in G.nodes(data=True) if d["op"] == "add" and d["step"] == 2
                  and d["name"] is None]
    assert len({keys[n] for n in adds_step2}) == len(adds_step2) == 2


def test_shared_input_leaf_is_not_tied_to_its_first_step():
    b = graphs.Builder()
    b.scope, b.step = "rnn", 1
    seq = b.input("xs")  # one leaf for the whole sequence, first used in step 1
    h = None
    for t in (1, 2, 3, 4):
        b.step = t
        x = b.op("getitem", seq, name="x")
        h = b.affine([("U", x)] + ([("W", h)] if h is not None else []), name="h")
    G = viz.load(b.G)
    assert G.nodes[seq]["step"] is None
    F = viz.fold(b.G)
    assert delay_edges(F) == [("h", "h", "W")]


# --- the folded view as the book draws it -----------------------------------------------------

def _dot_lines(src, pattern):
    return [line for line in src.splitlines() if re.search(pattern, line)]


def test_folded_teacher_forcing_draws_y_once_with_arrows_into_the_square():
    from test_viz_names import _teacher_forced
    src = viz.folded(_teacher_forced(4)).source
    assert len(_dot_lines(src, r"label=<<B>y</B>>")) == 1  # the target and the fed-back y
    into_square = _dot_lines(src, r"-> d\d+_\d+ |^\s*d\d+_\d+ -> .*dir=back")
    assert into_square and not any("arrowhead=none" in e for e in into_square)
    y_in = [e for e in into_square if "y → h" in e]  # the fed-back y reaches its square
    assert y_in and all("dir=back" not in e for e in y_in)
    assert len(_dot_lines(src, r"label=<<I>L</I>>")) == 1  # one L, as in the book


def test_folded_seq2seq_is_two_labelled_clusters_joined_by_an_untimed_context():
    src = viz.folded(graphs.seq2seq(4, T_out=3, context_step=True)).source
    assert "subgraph cluster_t0" in src and "subgraph cluster_t1" in src
    assert "label=encoder" in src and "label=decoder" in src
    assert "<B>C</B>>" in src and "<B>C</B><SUP>" not in src
    assert "<B>h</B><SUB>" in src and src.count("shape=square") == 3  # h_enc, h_dec, y loops


def test_folded_initial_states_leave_the_loop_alone():
    for G in (graphs.elman(5), graphs.bidirectional(4)):
        src = viz.folded(G).source
        assert "<SUP>(0)</SUP>" not in src and "τ+1" not in src
        labels = re.findall(r"label=<(<B>W[^>]*</B>(?:<SUB>.*?</SUB>)?)>", src)
        assert len(labels) == len(set(labels))  # each W once: on its loop, never beside it
