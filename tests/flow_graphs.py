"""Real recorded graphs for the gradient-flow tests (diagnose, overlays, charts, heat map).

Each builder runs a tinygraph.nn model on seeded data, computes ``tg.flow`` when asked, runs
``backward(keep_grads=True)`` and returns ``tg.trace(loss, flow=...)`` (plus what a test needs).
"""
from __future__ import annotations

import numpy as np

import tinygraph as tg
from tinygraph import nn


def step_terms(o, y, steps=None):
    """One loss term L(t) per output (summed over the batch), tagged with its step."""
    terms = []
    for k, ot in enumerate(o):
        with tg.step(k + 1 if steps is None else steps[k]):
            terms.append(tg.cross_entropy(ot, y[:, k], reduction="sum").named("L"))
    return terms


def _finish(terms, states, weights=None, flow=True, total=None):
    total = tg.stack(terms).sum().named("L") if total is None else total
    f = tg.flow(terms, states, weights=weights) if flow else None
    total.backward(keep_grads=True)
    return (tg.trace(total) if f is None else tg.trace(total, flow=f)), f


def elman(T=8, scale=1.0, seed=0, flow=True, B=2, H=16, last_only=False, loss_scale=1.0):
    """The seed's Elman RNN (one-hot inputs) with W scaled by `scale`; a loss at every step
    (or only at the last with `last_only`). Returns (graph, flow result, model)."""
    rng = np.random.default_rng(seed)
    m = nn.RNN(4, H, 4, rng=seed)
    m.cell.W.data *= scale
    x, y = rng.integers(0, 4, (B, T)), rng.integers(0, 4, (B, T))
    out = m(x)
    if last_only:
        terms = step_terms(out.o[-1:], y[:, -1:], steps=[T])
    else:
        terms = step_terms(out.o, y)
    total = (tg.stack(terms).sum() * loss_scale).named("L")
    g, f = _finish(terms, out.h, m.cell.W, flow, total)
    m.inputs = (x, y)          # for references computed from scratch
    return g, f, m


def bidirectional(T=6, seed=0):
    rng = np.random.default_rng(seed)
    m = nn.BidirectionalRNN(4, 8, 4, rng=seed)
    x, y = rng.integers(0, 4, (1, T)), rng.integers(0, 4, (1, T))
    out = m(x)
    return _finish(step_terms(out.o, y), {"h": out.h, "g": out.g},
                   {"h": m.fwd.W, "g": m.bwd.W})[0]


def seq2seq(n_x=5, n_y=4, seed=0, flow=True):
    rng = np.random.default_rng(seed)
    m = nn.Seq2Seq(5, 5, 8, rng=seed)
    src, tgt = rng.integers(0, 5, (1, n_x)), rng.integers(0, 5, (1, n_y + 1))
    with tg.scope(m.name):
        C, hs = m.encoder(src)
        out = m.decoder(C, tgt[:, :n_y])
    terms = step_terms(out.o, tgt[:, 1:])
    return _finish(terms, {"encoder/h": hs, "decoder/h": out.h},
                   {"encoder/h": m.encoder.cell.W, "decoder/h": m.decoder.W}, flow)[0]


def deep(T=6, seed=0):
    """A two-layer stacked RNN; the flow of both layers' states."""
    rng = np.random.default_rng(seed)
    m = nn.DeepRNN(4, 8, 4, kind="stacked", num_layers=2, rng=seed)
    x, y = rng.integers(0, 4, (1, T)), rng.integers(0, 4, (1, T))
    layers = []
    orig = m.step

    def step(x_t, state, wts=None):
        layers.append(orig(x_t, state, wts))
        return layers[-1]
    m.step = step
    out = m(x)
    del m.step
    return _finish(step_terms(out.o, y), {"layer1/h": [s[0] for s in layers],
                                          "layer2/h": [s[1] for s in layers]},
                   {"layer1/h": m.layers[0].W, "layer2/h": m.layers[1].W})[0]


def jordan_teacher(T=6, seed=0):
    """Output recurrence under teacher forcing: h(t) reads the true y(t-1), not h(t-1)."""
    rng = np.random.default_rng(seed)
    m = nn.JordanRNN(4, 8, 4, rng=seed)
    x, y = rng.integers(0, 4, (1, T)), rng.integers(0, 4, (1, T))
    out = m(x, y0=np.zeros(1, dtype=np.int64), y=y, mode="teacher")
    loss = nn.sequence_loss(out.o, y)
    loss.backward(keep_grads=True)
    return tg.trace(loss)


def unnamed(T=12, scale=1.0, seed=0):
    """An Elman recurrence written with bare ops and step tags but no names; loss at the end."""
    rng = np.random.default_rng(seed)
    W = tg.Parameter(rng.standard_normal((6, 6)) * scale / np.sqrt(6), name=None)
    U = tg.Parameter(rng.standard_normal((6, 3)) / np.sqrt(3), name=None)
    h = tg.zeros(1, 6)
    for t in range(1, T + 1):
        with tg.step(t):
            h = tg.tanh(h @ W.T + tg.tensor(rng.standard_normal((1, 3))) @ U.T)
    loss = (h * h).sum()
    loss.backward(keep_grads=True)
    return tg.trace(loss)


def tree(seed=0):
    """The recursive net recorded per node (fig. 10.14): steps are tree heights."""
    m = nn.RecursiveNN(3, 6, 3, rng=seed)
    out = m(nn.balanced_tree([0, 1, 2, 0, 1, 2, 0, 1]), per_node=True).o
    loss = tg.cross_entropy(out, tg.tensor(np.array([1]), name="y")).named("L")
    loss.backward(keep_grads=True)
    return tg.trace(loss)
