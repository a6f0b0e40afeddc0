"""viz on graphs traced from tinygraph.nn: the real export, every architecture of the seed."""
from __future__ import annotations

import numpy as np
import pytest

import viz

tg = pytest.importorskip("tinygraph")
nn = pytest.importorskip("tinygraph.nn")


def balanced(lo, hi):
    return lo % 5 if hi - lo == 1 else (balanced(lo, (lo + hi) // 2), balanced((lo + hi) // 2, hi))


def traced(arch, T, seed=0):
    rng = np.random.default_rng(seed)
    ids = lambda: rng.integers(0, 5, (2, T))  # noqa: E731
    y = ids()
    if arch == "elman":
        out = nn.RNN(5, 8, 5, rng=0)(ids())
        L = nn.sequence_loss(out.o, y)
    elif arch == "single_output":
        out = nn.RNN(5, 8, 5, output="last", rng=0)(ids())
        L = nn.sequence_loss(out.o, y[:, -1:], steps=out.steps)
    elif arch == "jordan":
        out = nn.JordanRNN(5, 8, 5, rng=0)(ids(), y0=np.array([0, 1]), mode="free")
        L = nn.sequence_loss(out.o, y)
    elif arch == "bidirectional":
        out = nn.BidirectionalRNN(5, 8, 5, rng=0)(ids())
        L = nn.sequence_loss(out.o, y)
    elif arch == "seq2seq":
        out = nn.Seq2Seq(5, 5, 8, rng=0)(ids(), np.array([T, T]), ids())
        L = nn.sequence_loss(out.o, y)
    elif arch.startswith("deep_"):
        out = nn.DeepRNN(5, 8, 5, kind=arch[5:], rng=0)(ids())
        L = nn.sequence_loss(out.o, y)
    elif arch == "tree":
        L = tg.cross_entropy(nn.RecursiveNN(5, 8, 5, rng=0)([balanced(0, T)]).o, np.array([1]))
    elif arch == "dynamical":
        s = nn.DynamicalSystem(3, rng=0)(np.ones((1, 3)), steps=T)
        L = (s[-1] * s[-1]).sum()
    L.backward(keep_grads=True)
    return tg.trace(L)


DELAYS = {
    "elman": [("h", "h", "W")],
    "single_output": [("h", "h", "W")],
    "jordan": [("o", "h", "W")],
    # the label rule: two chains' parameters, two layers' states never share a label
    "bidirectional": [("g", "g", "W_bwd"), ("h", "h", "W_fwd")],
    "deep_stacked": [("h_1", "h_1", "W_1"), ("h_2", "h_2", "W_2")],
    "deep_skip": [("h", "h", "Ws"), ("h", "z", "W")],
    "deep_deep_transition": [("h", "z", "W")],
    "tree": [("h", "h", "W")],
    "dynamical": [("s", "s", "W")],
}


@pytest.mark.parametrize("arch", sorted(DELAYS) + ["seq2seq"])
def test_real_graph_folds_the_same_for_short_and_long_sequences(arch):
    short, long = traced(arch, 4), traced(arch, 16)
    assert viz.folded(short).source == viz.folded(long).source
    assert viz.folded(short, level="op").source == viz.folded(long, level="op").source
    F = viz.fold(long)
    got = sorted((F.nodes[u]["name"], F.nodes[v]["name"], e["label"])
                 for u, v, e in F.edges(data=True) if e["delay"])
    if arch in DELAYS:
        assert got == DELAYS[arch]
    else:  # encoder loop, decoder loop (distinct names), and C = h(n_x) is no recurrence
        assert ("h_enc", "h_enc", "W_enc") in got and ("h_dec", "h_dec", "W_dec") in got


def test_real_seq2seq_decoder_follows_the_encoder_in_time():
    V = viz.unfolded_graph(traced("seq2seq", 3), max_steps=None)
    cols = {}
    for _, d in V.nodes(data=True):
        part = next((p for p in ("encoder", "decoder") if p in d["scope"]), None)
        if d["column"] is not None and part:
            cols.setdefault(part, set()).add(d["column"])
    assert max(cols["encoder"]) < min(cols["decoder"])


def test_real_graph_saved_by_the_engine_draws_through_the_cli(tmp_path):
    g = traced("elman", 12)
    g.save(str(tmp_path / "g.json"))
    assert viz.folded(str(tmp_path / "g.json")).source == viz.folded(g).source
    from viz.__main__ import main
    assert main([str(tmp_path / "g.json"), "--view", "folded", "-o", str(tmp_path / "f.dot")]) == 0
    assert "shape=square" in (tmp_path / "f.dot").read_text()


def test_real_gradients_feed_diagnose_and_contributions():
    g = traced("elman", 10)
    report = viz.diagnose(g)
    (s,) = report.series
    assert s.variable == "h" and s.steps[-1] == 10 and all(x > 0 for x in s.norms)
    per = viz.param_contributions(g)
    assert sorted(per["W"]) == list(range(2, 11)) or sorted(per["W"]) == list(range(1, 11))
    assert all(v >= 0 for v in per["U"].values())


def test_real_initial_state_sits_left_of_the_first_step_in_its_row():
    g = traced("elman", 5)
    V = viz.unfolded_graph(g, max_steps=None)
    h = sorted((d["step"], d["row"], d["column"]) for _, d in V.nodes(data=True)
               if d["name"] == "h")
    assert h[0][0] == 0 and len({r for _, r, _ in h}) == 1
    assert [c for _, _, c in h] == sorted(c for _, _, c in h)
    src = viz.folded(g).source  # the book's folded figure: one loop, no h(0) beside it
    assert "<SUP>(0)</SUP>" not in src and src.count("shape=square") == 1
    assert src.count("<B>W</B>") == 1
