"""The shared recurrent loop (tinygraph.nn.loop): steps, masks, h(0), the output layer, state=."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import tinygraph as tg
from tinygraph import nn
from tinygraph.nn import loop


def graph_rows(loss):
    """Every node's schema attributes but its source line, and every edge: comparable graphs."""
    G = tg.trace(loss).to_networkx()
    nodes = [(n, {k: v for k, v in d.items() if k != "src"}) for n, d in G.nodes(data=True)]
    return nodes, sorted((u, v, tuple(sorted(d.items()))) for u, v, d in G.edges(data=True))


def test_rnn_records_the_graph_of_a_hand_written_step_loop():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 4, (2, 5)), rng.integers(0, 3, (2, 5))
    m = nn.RNN(4, 6, 3, rng=0)
    by_module = graph_rows(nn.sequence_loss(m(x).o, y))
    outs = []
    with tg.scope("rnn"):                                  # the book's loop, written out by hand
        with tg.step(0):
            h = tg.zeros(2, 6).named("h")
        with tg.scope("cell"):
            UT, WT = m.cell.U.T, m.cell.W.T
        VT = m.V.T
        for t in range(1, 6):
            with tg.step(t):
                xt = tg.tensor(x[:, t - 1], name="x")
                with tg.scope("cell"):
                    h = tg.tanh(tg.embedding(UT, xt) + h @ WT + m.cell.b).named("h")
                outs.append((h @ VT + m.c).named("o"))
    assert graph_rows(nn.sequence_loss(outs, y)) == by_module


def test_run_masks_names_emits_and_stops():
    masks = loop.length_masks(nn.RNN(1, 1), np.array([3, 1]), 2, 4)
    assert masks.shape == (4, 2, 1)
    seen = []

    def step(t, s, named):
        seen.append(named)
        return (s + 1.0).named("s" if named else None)
    r = loop.run(step, tg.zeros(2, 1), range(1, 5), masks, names=("s",),
                 emit=lambda t, s: s * 2.0 if t % 2 == 0 else None)
    assert seen == [False] * 4                             # masked: the loop names the states
    np.testing.assert_array_equal(r.final.data, [[3.0], [1.0]])   # frozen after each length
    assert r.steps == [2, 4] and len(r.outputs) == 2 and r.final is r.states[-1]
    assert [s.name for s in r.states] == ["s"] * 4
    r = loop.run(lambda t, s, named: s + 1.0, tg.zeros(1), range(10, 0, -1),
                 until=lambda s: s.data[0] >= 3)
    assert len(r.states) == 3


def test_start_state_makes_named_zeros_at_step_0_and_keeps_a_given_tensor():
    m = nn.LSTM(2, 3)
    h, c = loop.start_state(m, None, 4, 3, np.float64, ("h", "c"))
    assert (h.name, c.name, h.shape) == ("h", "c", (4, 3))
    carried = tg.ones(4, 3)
    assert loop.start_state(m, (carried, None), 4, 3, np.float64, ("h", "c"))[0] is carried
    assert loop.start_state(nn.RNN(2, 3), carried, 4, 3, np.float64) is carried


@pytest.mark.parametrize("make, call, old", [
    (lambda: nn.RNN(3, 4, 2, rng=0), lambda m, **kw: m(np.array([[0, 1, 2]]), **kw).o[-1],
     {"h0": np.ones((1, 4))}),
    (lambda: nn.DynamicalSystem(4, rng=0), lambda m, **kw: m(steps=3, **kw)[-1],
     {"s0": np.ones((1, 4))}),
    (lambda: nn.BidirectionalRNN(3, 4, 2, rng=0),
     lambda m, **kw: m(np.array([[0, 1, 2]]), **kw).o[0],
     {"h0": np.ones((1, 4)), "g0": np.full((1, 4), 0.5)}),
])
def test_old_state_keywords_warn_and_equal_state(make, call, old):
    m = make()
    with pytest.warns(DeprecationWarning, match="deprecated; pass the initial state as state="):
        a = call(m, **old)
    state = tuple(old.values()) if len(old) > 1 else next(iter(old.values()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = call(m, state=state)
    np.testing.assert_array_equal(a.data, b.data)
    with pytest.raises(TypeError, match="got both state= and the deprecated"), \
            pytest.warns(DeprecationWarning):
        call(m, state=state, **old)
    with pytest.raises(TypeError, match="unexpected keyword argument 'h_0'"):
        call(m, h_0=1)


@pytest.mark.parametrize("make", [
    lambda: nn.RNN(4, 5, 3, rng=0),
    lambda: nn.GRU(4, 5, 3, rng=0),
    lambda: nn.LSTM(4, 5, 3, rng=0),
    lambda: nn.DeepRNN(4, 5, 3, kind="stacked", rng=0),
    lambda: nn.DeepRNN(4, 5, 3, kind="skip", rng=0),
])
def test_out_state_carried_into_the_next_chunk_continues_the_sequence(make):
    m = make()
    x = np.random.default_rng(1).integers(0, 4, (2, 7))
    whole = m(x)
    first = m(x[:, :3])
    rest = m(x[:, 3:], state=first.state)
    for t in range(4):
        np.testing.assert_allclose(rest.o[t].data, whole.o[t + 3].data, rtol=0, atol=1e-13)


def test_bidirectional_and_encoder_state():
    x = np.random.default_rng(2).integers(0, 4, (2, 5))
    b = nn.BidirectionalRNN(4, 3, 2, rng=0)
    out = b(x)
    assert out.state[0] is out.h[-1] and out.state[1] is out.g[0]   # (h(tau), g(1))
    enc = nn.Encoder(4, 3, rng=0)
    h0 = np.random.default_rng(3).standard_normal((2, 3))
    C, hs = enc(x, state=h0)
    C0, _ = enc(x)
    assert not np.allclose(C.data, C0.data)
    assert len(hs) == 5


def test_output_layer_is_one_piece_with_the_book_names():
    for m in (nn.RNN(3, 4, 2), nn.LSTM(3, 4, 2), nn.GRU(3, 4, 2), nn.JordanRNN(3, 4, 2),
              nn.DeepRNN(3, 4, 2), nn.BidirectionalRNN(3, 4, 2), nn.RecursiveNN(3, 4, 2)):
        keys = [k for k, _ in m.named_parameters()]
        assert {"V", "c"} <= set(keys), type(m).__name__
        assert (m.V.name, m.c.name) == ("V", "c")
