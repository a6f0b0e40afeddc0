"""tinygraph.nn modules: gradcheck of every architecture, graph tags, masks, state, bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest

import tinygraph as tg
from tinygraph import nn
from tinygraph.data import balanced_tree, expression_trees, reverse_pairs

from nn_helpers import module_gradcheck

R = np.random.default_rng(0)
IDS = R.integers(0, 4, size=(2, 4))
Y = R.integers(0, 3, size=(2, 4))
XF = R.standard_normal((2, 4, 3))


def _dyn():
    m = nn.DynamicalSystem(3, rng=0)
    s0, target = R.standard_normal((2, 3)), R.standard_normal((2, 3))
    return m, lambda: tg.mse_loss(m(s0, steps=4)[-1], target)


def _dyn_driven():
    m = nn.DynamicalSystem(3, input_size=3, rng=0)
    return m, lambda: tg.stack(m(x=XF)).sum()


def _rnn_every():
    m = nn.RNN(3, 4, 3, rng=0)
    return m, lambda: nn.sequence_loss(m(XF).o, Y)


def _rnn_last():
    m = nn.RNN(4, 4, 3, output="last", rng=0)
    return m, lambda: tg.cross_entropy(m(IDS, lengths=np.array([4, 2])).last, Y[:, 0])


def _jordan():
    m = nn.JordanRNN(4, 4, 3, rng=0)
    return m, lambda: nn.sequence_loss(m(IDS, y0=np.array([0, 2]), y=Y).o, Y)


def _jordan_free():
    m = nn.JordanRNN(4, 4, 3, rng=0)
    return m, lambda: nn.sequence_loss(m(IDS, y0=np.array([0, 2]), mode="free").o, Y)


def _birnn():
    m = nn.BidirectionalRNN(4, 3, 3, rng=0)
    return m, lambda: nn.sequence_loss(m(IDS, lengths=np.array([4, 3])).o, Y,
                                       mask=np.arange(4)[None] < np.array([[4], [3]]))


def _seq2seq():
    m = nn.Seq2Seq(9, 9, 4, rng=0)
    d = reverse_pairs(3, 1, 3, digits=4, seed=0)
    mask = np.arange(d["tgt_out"].shape[1])[None] < d["tgt_len"][:, None]
    return m, lambda: nn.sequence_loss(m(d["src"], d["src_len"], d["tgt_in"]).o, d["tgt_out"],
                                       mask=mask)


def _deep(kind):
    def make():
        m = nn.DeepRNN(4, 3, 3, kind=kind, rng=0)
        return m, lambda: nn.sequence_loss(m(IDS).o, Y)
    return make


def _recursive():
    m = nn.RecursiveNN(3, 3, 3, rng=0)
    trees, y = expression_trees(4, 1, 5, K=3, seed=0)
    return m, lambda: tg.cross_entropy(m(trees).o, y)


def _recursive_per_node():
    m = nn.RecursiveNN(3, 3, 3, rng=0, per_node=True)
    trees, y = expression_trees(3, 1, 5, K=3, seed=0)
    return m, lambda: tg.cross_entropy(m(trees).o, y)


ARCHS = {"dynamical": _dyn, "dynamical_driven": _dyn_driven, "rnn_every": _rnn_every,
         "rnn_last": _rnn_last, "jordan_teacher": _jordan, "jordan_free": _jordan_free,
         "bidirectional": _birnn, "seq2seq": _seq2seq, "deep_stacked": _deep("stacked"),
         "deep_transition": _deep("deep_transition"), "deep_skip": _deep("skip"),
         "recursive": _recursive, "recursive_per_node": _recursive_per_node}


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_architecture_passes_gradcheck(arch):
    module, loss_fn = ARCHS[arch]()
    res = module_gradcheck(module, loss_fn)
    assert res.ok, str(res)


def test_gradcheck_through_a_float_input_that_requires_grad():
    m = nn.RNN(3, 4, 3, rng=0)
    x = tg.tensor(XF, requires_grad=True)
    assert tg.gradcheck(lambda xx: nn.sequence_loss(m(xx).o, Y), [x]).ok


def nodes_of(loss):
    return [d for _, d in tg.trace(loss).to_networkx().nodes(data=True)]


def test_elman_graph_reads_like_the_book():
    m = nn.RNN(3, 4, 3, rng=0)
    loss = nn.sequence_loss(m(XF).o, Y)
    nodes = nodes_of(loss)
    named = {(d["name"], d["step"]) for d in nodes if d["name"]}
    for t in range(1, 5):
        for v in ("x", "h", "o", "L"):
            assert (v, t) in named, (v, t)
    assert ("L", None) in named and ("h", 0) in named      # the total loss and h(0)
    params = {d["name"] for d in nodes if d["kind"] == "param"}
    assert params == {"U", "W", "V", "b", "c"}
    tanh = [d for d in nodes if d["op"] == "tanh"]
    assert [d["step"] for d in tanh] == [1, 2, 3, 4]
    assert {d["scope"] for d in tanh} == {"rnn/cell"}
    assert all(d["scope"] == "rnn" for d in nodes if d["name"] == "o")


def test_module_scope_nests_under_a_parent_name():
    m = nn.Seq2Seq(9, 9, 4, rng=0, name="translator")
    d = reverse_pairs(2, seed=1)
    nodes = nodes_of(nn.sequence_loss(m(d["src"], d["src_len"], d["tgt_in"]).o, d["tgt_out"]))
    scopes = {d["scope"] for d in nodes}
    assert {"translator/encoder/cell", "translator/decoder"} <= scopes
    assert [d["name"] for d in nodes].count("C") == 1


def test_jordan_teacher_forcing_feeds_y_and_free_running_feeds_o():
    m = nn.JordanRNN(4, 4, 3, rng=0)
    g_t = tg.trace(nn.sequence_loss(m(IDS, y0=np.array([0, 2]), y=Y).o, Y)).to_networkx()
    g_f = tg.trace(nn.sequence_loss(m(IDS, y0=np.array([0, 2]), mode="free").o, Y)).to_networkx()

    def fed_sources(g):   # what feeds the W lookups (the output-to-hidden edge) at steps >= 2
        out = []
        for n, d in g.nodes(data=True):
            if d["op"] == "embedding" and d["step"] and d["step"] >= 2:
                srcs = [g.nodes[u] for u, _, e in g.in_edges(n, data=True) if e["arg"] == 1]
                if any(g.nodes[u]["op"] == "transpose" and
                       g.nodes[list(g.predecessors(u))[0]]["name"] == "W"
                       for u, _, e in g.in_edges(n, data=True) if e["arg"] == 0):
                    out.append(srcs[0])
        return out
    teacher, free = fed_sources(g_t), fed_sources(g_f)
    assert len(teacher) == len(free) == 3
    assert all(s["op"] == "leaf" and s["name"] == "y" for s in teacher)
    assert [s["step"] for s in teacher] == [1, 2, 3]          # y(t-1) feeds h(t)
    assert all(s["op"] == "argmax" for s in free)
    for n, d in g_f.nodes(data=True):   # argmax reads o(t-1)
        if d["op"] == "argmax":
            assert g_f.nodes[list(g_f.predecessors(n))[0]]["name"] == "o"


def test_bidirectional_names_backward_states_g_and_runs_them_backward():
    m = nn.BidirectionalRNN(4, 3, 3, rng=0)
    out = m(IDS)
    nodes = nodes_of(nn.sequence_loss(out.o, Y))
    g_steps = [d["step"] for d in nodes if d["name"] == "g"]
    assert g_steps == [5, 4, 3, 2, 1]                 # g(tau + 1) is the initial state
    assert [d["step"] for d in nodes if d["name"] == "h"] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("make", [
    lambda: nn.RNN(4, 5, 3, rng=0, dtype=np.float32),
    lambda: nn.DeepRNN(4, 5, 3, kind="skip", rng=0, dtype=np.float32),
    lambda: nn.BidirectionalRNN(4, 5, 3, rng=0, dtype=np.float32),
])
def test_float32_models_stay_float32(make):
    m = make()
    out = m(IDS)
    loss = nn.sequence_loss(out.o, Y % 3)
    loss.backward()
    assert loss.dtype == np.float32 and all(o.dtype == np.float32 for o in out.o)
    assert all(p.grad.dtype == np.float32 for p in m.parameters())


def test_padded_sequences_equal_their_unpadded_runs():
    m = nn.RNN(4, 5, 3, output="last", rng=0)
    batch = np.array([[1, 2, 3, 0, 0], [3, 1, 0, 2, 2]])
    out = m(batch, lengths=np.array([3, 5]))
    alone = m(batch[:1, :3])
    np.testing.assert_allclose(out.last.data[0], alone.last.data[0], atol=1e-14)
    b = nn.BidirectionalRNN(4, 3, 3, rng=0)
    o_pad = b(batch, lengths=np.array([3, 5])).o
    o_one = b(batch[:1, :3]).o
    for t in range(3):
        np.testing.assert_allclose(o_pad[t].data[0], o_one[t].data[0], atol=1e-14)
    s = nn.Seq2Seq(5, 5, 4, rng=0)
    C_pad, _ = s.encoder(batch, np.array([3, 5]))
    C_one, _ = s.encoder(batch[:1, :3])
    np.testing.assert_allclose(C_pad.data[0], C_one.data[0], atol=1e-14)


@pytest.mark.parametrize("tau", [1, 2, 3, 5, 8, 9, 16, 17, 33])
def test_recursive_net_over_a_balanced_tree_has_depth_ceil_log2_tau(tau):
    m = nn.RecursiveNN(3, 4, 2, rng=0)
    tree = balanced_tree([i % 3 for i in range(tau)])
    out = m(tree)
    assert out.depth == [math.ceil(math.log2(tau)) if tau > 1 else 0]
    steps = {d["step"] for d in nodes_of(out.o.sum()) if d["name"] == "h"}
    assert steps == set(range(out.depth[0] + 1))


def test_recursive_batch_equals_one_tree_at_a_time():
    m = nn.RecursiveNN(3, 4, 3, rng=0)
    trees, _ = expression_trees(6, 1, 7, K=3, seed=2)
    batch = m(trees).o.data
    for i, t in enumerate(trees):
        np.testing.assert_allclose(m(t).o.data[0], batch[i], atol=1e-14)


def test_recursive_walks_deep_trees_without_recursion():
    m = nn.RecursiveNN(2, 3, 2, rng=0)
    tree = 0
    for _ in range(3000):           # a left-deep chain: deeper than Python's recursion limit
        tree = (tree, 1)
    out = m(tree)
    assert out.depth == [3000]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recursive_per_node_gives_the_numbers_and_gradients_of_the_batched_mode(seed):
    m = nn.RecursiveNN(3, 5, 3, rng=seed)
    trees, y = expression_trees(5, 1, 9, K=3, seed=seed)
    got = []
    for per_node in (False, True):
        m.zero_grad()
        out = m(trees, per_node=per_node)
        loss = tg.cross_entropy(out.o, y)
        loss.backward()
        got.append((out.o.data.copy(), out.root.data.copy(),
                    {k: p.grad.copy() for k, p in m.named_parameters()}))
    (o1, r1, g1), (o2, r2, g2) = got
    np.testing.assert_allclose(o2, o1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r2, r1, rtol=0, atol=1e-12)
    assert g1.keys() == g2.keys()
    for k in g1:
        np.testing.assert_allclose(g2[k], g1[k], rtol=0, atol=1e-12, err_msg=k)


def test_recursive_per_node_records_one_composition_per_tree_node():
    m = nn.RecursiveNN(3, 4, 3, rng=0, per_node=True)
    tree = (((0, 1), 2), (1, (2, 0)))             # 6 leaves, 5 internal nodes, depth 3
    out = m(tree)
    nodes = nodes_of(out.o.sum())
    h = [d for d in nodes if d["name"] == "h"]
    x = [d for d in nodes if d["name"] == "x"]
    assert len(h) == 11 and len(x) == 6 and len(out.nodes) == 11
    assert sorted(d["step"] for d in h) == [0] * 6 + [1, 1, 2, 2, 3]   # step = height
    assert {d["step"] for d in x} == {0} and {d["scope"] for d in h} == {"recursive"}
    assert [len(level) for level in out.levels] == [6, 2, 2, 1]
    assert [d["op"] for d in nodes].count("tanh") == 11
    assert [d["op"] for d in nodes].count("concat") == 5      # one [h_left; h_right] per node
    G = tg.trace(out.o.sum()).to_networkx()
    ids = [n for n, d in G.nodes(data=True) if d["name"] == "h"]
    parents = {n: [v for v in nx_descendants_named(G, n, "h")] for n in ids}
    assert sorted(len(p) for p in parents.values()) == [0] + [1] * 10  # a tree: one parent each
    np.testing.assert_allclose(out.o.data, m(tree, per_node=False).o.data, atol=1e-12)


def nx_descendants_named(G, n, name):
    """The nearest descendants of n named `name` (through unnamed ops)."""
    found, todo, seen = [], list(G.successors(n)), set()
    while todo:
        v = todo.pop()
        if v in seen:
            continue
        seen.add(v)
        if G.nodes[v]["name"] == name:
            found.append(v)
        elif not G.nodes[v]["name"]:
            todo.extend(G.successors(v))
    return found


def test_recursive_per_node_walks_deep_trees_without_recursion():
    m = nn.RecursiveNN(2, 3, 2, rng=0, per_node=True)
    tree = 0
    for _ in range(2000):
        tree = (tree, 1)
    out = m(tree)
    assert out.depth == [2000] and len(out.nodes) == 4001
    np.testing.assert_allclose(out.o.data, m(tree, per_node=False).o.data, atol=1e-12)


def test_state_dict_save_and_load_round_trip(tmp_path):
    a = nn.DeepRNN(4, 3, 3, kind="skip", rng=0)
    b = nn.DeepRNN(4, 3, 3, kind="skip", rng=1)
    path = tmp_path / "m.npz"
    a.save(str(path))
    b.load(str(path))
    for (ka, pa), (kb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert ka == kb
        np.testing.assert_array_equal(pa.data, pb.data)
    np.testing.assert_array_equal(a(IDS).o[-1].data, b(IDS).o[-1].data)


def test_same_seed_same_parameters_and_zero_grad():
    a, b = nn.RNN(3, 4, 2, rng=7), nn.RNN(3, 4, 2, rng=7)
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(pa.data, pb.data)
    nn.sequence_loss(a(XF).o, Y % 2).backward()
    assert all(p.grad is not None for p in a.parameters())
    a.zero_grad()
    assert all(p.grad is None for p in a.parameters())
    assert a.num_parameters() == 4 * 3 + 16 + 4 + 2 * 4 + 2


BAD = [
    (lambda: nn.RNN(3, 4, 2)(np.zeros((2, 5, 4))), r"RNN 'rnn'.*\(B, T, 3\).*got shape \(2, 5, 4\)"),
    (lambda: nn.RNN(3, 4, 2)(np.zeros((2, 5))), r"RNN 'rnn'.*got shape \(2, 5\) dtype float64"),
    (lambda: nn.RNN(3, 4, 2)(np.array([[0, 1, 3]])), r"RNN 'rnn'.*\[0, 3\), got 3"),
    (lambda: nn.RNN(3, 4, 2)(np.zeros((2, 0, 3))), r"RNN 'rnn'.*length T = 0"),
    (lambda: nn.RNN(3, 4, 2)(np.array([[0, 1]]), lengths=np.array([3])),
     r"RNN 'rnn'.*lengths.*\[1, 2\]"),
    (lambda: nn.RNN(3, 4, 2)(np.array([[0, 1]]), state=np.zeros((1, 5))),
     r"RNN 'rnn'.*state of shape \(1, 4\), got \(1, 5\)"),
    (lambda: nn.JordanRNN(2, 4, 3)(np.array([[0, 1]]), y0=np.array([0])),
     r"JordanRNN 'jordanrnn'.*targets y"),
    (lambda: nn.JordanRNN(2, 4, 3)(np.array([[0, 1]]), y0=np.array([5]), mode="free"),
     r"JordanRNN.*y0 must lie in \[0, 3\), got 5"),
    (lambda: nn.Seq2Seq(5, 5, 4)(np.array([[3, 4]]), np.array([2]), np.array([[1, 7]])),
     r"Decoder 'decoder'.*decoder inputs y_in must lie in \[0, 5\), got 7"),
    (lambda: nn.RecursiveNN(3, 4, 2)(((0, 1), (2,))), r"tree 0: node at path \(1,\) has 1 children"),
    (lambda: nn.RecursiveNN(3, 4, 2)([((0, 1), [2, 0])]), r"tree 0: node at path \(1,\) is a list"),
    (lambda: nn.RecursiveNN(3, 4, 2)([(0, 1), (0, 7)]), r"tree 1: leaf at path \(1,\) is 7"),
    (lambda: nn.DeepRNN(3, 4, 2, kind="wide"), r"kind must be one of"),
    (lambda: nn.DeepRNN(3, 4, 2)(np.array([[0]]), state=[np.zeros((1, 4))]),
     r"DeepRNN 'deeprnn': expected 2 initial states, got 1"),
    (lambda: nn.Linear(3, 2)(np.zeros((4, 2))), r"Linear 'linear'.*\(\.\.\., 3\), got \(4, 2\)"),
    (lambda: nn.Embedding(5, 2)(np.array([1, 5])), r"Embedding 'embedding'.*\[0, 5\), got 5"),
    (lambda: nn.sequence_loss([tg.zeros(2, 3)], np.zeros((2, 2), dtype=int)),
     r"sequence_loss: expected int targets y of shape \(B, 1\)"),
]


@pytest.mark.parametrize("call, message", BAD)
def test_bad_input_raises_naming_the_module(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_state_dict_mismatches_name_the_keys_and_shapes():
    m = nn.RNN(3, 4, 2)
    sd = m.state_dict()
    sd["extra"] = sd.pop("V")
    with pytest.raises(KeyError, match=r"missing keys \['V'\], unexpected keys \['extra'\]"):
        m.load_state_dict(sd)
    sd = m.state_dict()
    sd["cell.W"] = np.zeros((5, 5))
    with pytest.raises(ValueError, match=r"cell.W expected shape \(4, 4\), got \(5, 5\)"):
        m.load_state_dict(sd)


BOOK_NAMES = {"x", "h", "g", "o", "yhat", "y", "L", "C", "s", "a", "z"}


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_architecture_names_its_variables_as_the_book_and_tags_steps(arch):
    module, loss_fn = ARCHS[arch]()
    nodes = nodes_of(loss_fn())
    own = {k.split(".")[-1] for k, _ in module.named_parameters()}
    for d in nodes:
        if d["kind"] == "param":
            assert d["name"] in own
        elif d["name"] is not None:
            assert d["name"] in BOOK_NAMES, d
        assert d["step"] is None or isinstance(d["step"], int)
        if d["name"] in ("h", "g", "s", "o", "C", "z"):          # made inside the module
            assert d["scope"].split("/")[0] == module.name, d
    named = [d for d in nodes if d["kind"] == "op" and d["name"] in ("h", "s", "g")]
    assert named and all(d["step"] is not None for d in named)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_per_step_copies_change_the_graph_not_the_gradients(arch):
    module, loss_fn = ARCHS[arch]()
    loss = loss_fn()
    loss.backward()
    fast = {k: p.grad.copy() for k, p in module.named_parameters()}
    module.zero_grad()
    with nn.per_step_copies():
        loss2 = loss_fn()
    loss2.backward()
    assert loss2.item() == pytest.approx(loss.item(), rel=1e-13)
    for k, p in module.named_parameters():
        np.testing.assert_allclose(p.grad, fast[k], rtol=1e-12, atol=1e-14)
    steps = [d["step"] for d in nodes_of(loss2) if d["op"] == "transpose"]
    assert any(s for s in steps)            # shared weights read inside the steps


def test_sequence_loss_hands_out_its_per_step_terms_for_flow():
    rng = np.random.default_rng(3)
    o = [tg.tensor(rng.standard_normal((2, 4)), requires_grad=True) for _ in range(3)]
    y = rng.integers(0, 4, (2, 3))
    terms = []
    total = nn.sequence_loss(o, y, terms=terms)
    assert [t.name for t in terms] == ["L"] * 3
    ref = sum(tg.cross_entropy(o[k], y[:, k], reduction="sum").item() for k in range(3)) / y.size
    assert total.item() == pytest.approx(ref, rel=1e-12)
    assert sum(t.item() for t in terms) / y.size == pytest.approx(total.item(), rel=1e-12)
    with pytest.raises(ValueError, match="terms= collects the per-step L"):
        nn.sequence_loss(o, y, per_step=False, terms=[])
