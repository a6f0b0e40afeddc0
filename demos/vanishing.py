"""The vanishing-gradient demonstration: an Elman RNN asked to remember its first input.

Flow: a long-range task made here -> tinygraph.nn.RNN(output="last") trained with
tinygraph.optim -> held-out sequences recorded with ``tg.flow`` and
``backward(keep_grads=True)`` -> viz.diagnose (the horizon), viz.gradient_chart, viz.flow_map
and the unfolded overlay (demos.gallery and demos.flow_exhibits write them).

The label of each sequence is its first symbol, followed by T − 1 distractors; the loss is at
the last step only, so the only way to learn is a gradient that travels back T − 1 steps to
h(1). While T − 1 is inside the effective horizon (how far back ‖∂L/∂h(t)‖ stays above 1e-3 of
its value at h(T)) it arrives and the network learns; beyond it the network stays near chance
(Bengio et al., 1994; the seed's BPTT section).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

import tinygraph as tg
from tinygraph import nn
from tinygraph.optim import Adam, clip_grad_norm

K = 4  # symbols


def recall_first(n: int, T: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random symbol sequences (n, T); the label is the first symbol."""
    x = np.random.default_rng(seed).integers(0, K, (n, T))
    return x, x[:, 0].copy()


@dataclass
class Run:
    """One length: held-out accuracy after training, the recorded graph of held-out sequences
    (with the flow of the final loss exported) and the model."""

    T: int
    accuracy: float
    graph: Any
    model: Any = None


def train(T: int, steps: int = 150, hidden: int = 24, seed: int = 0, record: int = 8) -> Run:
    """Train an Elman RNN on recall-the-first-symbol at length T; record `record` held-out
    sequences (their loss at the last step, its flow back to every h(t))."""
    x, y = recall_first(2000, T, seed)
    tx, ty = recall_first(500, T, seed + 1000)
    model = nn.RNN(K, hidden, K, output="last", rng=seed)
    opt = Adam(model.parameters(), lr=0.01)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        idx = rng.integers(0, len(y), 32)
        opt.zero_grad()
        loss = tg.cross_entropy(model(x[idx]).last, y[idx])
        loss.backward()
        clip_grad_norm(model.parameters(), 5.0)
        opt.step()
    with tg.no_grad():
        acc = float((model(tx).last.data.argmax(-1) == ty).mean())
    return Run(T, acc, record_run(model, tx[:record], ty[:record]), model)


def record_run(model: Any, x: np.ndarray, y: np.ndarray) -> Any:
    """The traced graph of `model` (an RNN, LSTM or GRU with ``output="last"``) on (x, y), with
    the flow of its one loss term to every state exported: h(t), and an LSTM's cell c(t);
    ρ(W) when the cell has one square recurrent W (the gated cells' stacked gate weights are
    not one map, so they get the Jacobians' σ_max without ρ)."""
    out = model(x)
    with tg.step(x.shape[1]):
        loss = tg.cross_entropy(out.last, y).named("L")
    W = getattr(getattr(model, "cell", None), "W", None)
    if out.c:
        flow = tg.flow([loss], {"h": out.h, "c": out.c})
    else:
        flow = tg.flow([loss], out.h, weights=W)
    loss.backward(keep_grads=True)
    return tg.trace(loss, flow=flow)
