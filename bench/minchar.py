"""The min-char-rnn port: Karpathy's character-level RNN (B = 1, column vectors), two ways.

Flow: a benchmark row beside the engine (`bench.bench_table` times it); nothing here is imported
by `tinygraph`. `numpy_loss_and_grads` is the model in plain numpy, written here from its
equations (the seed's Elman RNN with one-hot inputs); `tinygraph_loss_and_grads` is what a user
porting it writes with tinygraph ops. The benchmark first checks they agree, then times both.

The model, for one window of T characters with ids x(1..T) and targets y(1..T) (y(t) = x(t+1)):

    h(t) = tanh(Wxh e(x(t)) + Whh h(t-1) + bh)       e(k): the one-hot column of character k
    s(t) = Why h(t) + by,   p(t) = softmax(s(t)),   L = -sum_t log p(t)[y(t)]

and its backward (the seed's BPTT in column form):

    ds(t) = p(t) - e(y(t))         dWhy += ds(t) h(t)^T        dby += ds(t)
    dh(t) = Why^T ds(t) + dnext    dr(t) = (1 - h(t)^2) * dh(t)
    dbh += dr(t)   dWxh += dr(t) e(x(t))^T   dWhh += dr(t) h(t-1)^T   dnext = Whh^T dr(t)
"""
from __future__ import annotations

import numpy as np

import tinygraph as tg

NAMES = ("Wxh", "Whh", "Why", "bh", "by")


def init(vocab: int = 60, hidden: int = 100, T: int = 25, seed: int = 0) -> tuple:
    """(params, inputs, targets, h0): small random weights (scale 0.01, as the original) and a
    random character window."""
    rng = np.random.default_rng(seed)
    p = {"Wxh": rng.standard_normal((hidden, vocab)) * 0.01,
         "Whh": rng.standard_normal((hidden, hidden)) * 0.01,
         "Why": rng.standard_normal((vocab, hidden)) * 0.01,
         "bh": np.zeros((hidden, 1)), "by": np.zeros((vocab, 1))}
    chars = rng.integers(0, vocab, T + 1)
    return p, chars[:-1], chars[1:], np.zeros((hidden, 1))


def numpy_loss_and_grads(p: dict, inputs: np.ndarray, targets: np.ndarray,
                         h0: np.ndarray) -> tuple[float, dict, np.ndarray]:
    """Forward and backward in plain numpy: (loss, gradients by name, last hidden state)."""
    Wxh, Whh, Why, bh, by = (p[k] for k in NAMES)
    V = Wxh.shape[1]
    xs, hs, ps = {}, {-1: h0}, {}
    loss = 0.0
    for t, k in enumerate(inputs):
        xs[t] = np.zeros((V, 1))
        xs[t][k] = 1.0
        hs[t] = np.tanh(Wxh @ xs[t] + Whh @ hs[t - 1] + bh)
        s = Why @ hs[t] + by
        e = np.exp(s - s.max())
        ps[t] = e / e.sum()
        loss -= np.log(ps[t][targets[t], 0])
    g = {k: np.zeros_like(p[k]) for k in NAMES}
    dnext = np.zeros_like(h0)
    for t in reversed(range(len(inputs))):
        ds = ps[t].copy()
        ds[targets[t]] -= 1.0
        g["Why"] += ds @ hs[t].T
        g["by"] += ds
        dr = (1.0 - hs[t] * hs[t]) * (Why.T @ ds + dnext)
        g["bh"] += dr
        g["Wxh"] += dr @ xs[t].T
        g["Whh"] += dr @ hs[t - 1].T
        dnext = Whh.T @ dr
    return float(loss), g, hs[len(inputs) - 1]


def tinygraph_loss_and_grads(p: dict, inputs: np.ndarray, targets: np.ndarray,
                             h0: np.ndarray) -> tuple[float, dict, np.ndarray]:
    """The same model written with tinygraph ops, as a user ports it line by line."""
    prm = {k: tg.Parameter(p[k], name=k) for k in NAMES}
    Wxh, Whh, Why, bh, by = (prm[k] for k in NAMES)
    V = Wxh.shape[1]
    h = tg.tensor(h0)
    loss = 0.0
    for t, k in enumerate(inputs):
        x = np.zeros((V, 1))
        x[k] = 1.0
        h = tg.tanh(Wxh @ x + Whh @ h + bh)
        s = Why @ h + by
        loss = loss + tg.cross_entropy(s.T, np.array([targets[t]]), reduction="sum")
    loss.backward()
    return loss.item(), {k: prm[k].grad for k in NAMES}, h.data
