"""The vanishing-gradient demonstration: an Elman RNN asked to remember its first input.

Flow: a long-range task made here -> tinygraph.nn.RNN(output="last") trained with
tinygraph.optim -> one recorded batch with ``backward(keep_grads=True)`` -> viz.diagnose,
viz.gradient_chart and the unfolded gradient overlay (demos.gallery writes them).

The label of each sequence is its first symbol; the loss is at the last step only, so the only
way to learn is a gradient that travels back through every step. With T = 5 it arrives and the
network learns; with T = 50 it has shrunk by many orders of magnitude by the time it reaches
h(1), and the network learns far less in the same training (Bengio et al., 1994; the seed's
BPTT section). The gallery prints both accuracies beside the chance level 1/K.
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
    """One length: held-out accuracy after training, and the recorded graph of one sequence."""

    T: int
    accuracy: float
    graph: Any


def train(T: int, steps: int = 150, hidden: int = 24, seed: int = 0) -> Run:
    """Train an Elman RNN on recall-the-first-symbol at length T; record one held-out pass."""
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
    loss = tg.cross_entropy(model(tx[:1]).last, ty[:1]).named("L")
    loss.backward(keep_grads=True)
    return Run(T, acc, tg.trace(loss))
