"""A plain Python loop, no ``tg.step`` and no ``.named``: viz recovers the Elman RNN by itself.

Flow: the loop below, recorded with ``tg.recording(source=True)`` -> ``tg.trace`` -> viz (the
schema's loader calls viz.infer, which finds the repeated loop body and the variable names
``h``, ``o``, ``L`` on these very lines) -> the same figures as the annotated fig. 10.3.

The network is trained briefly on a task that needs one step of memory: y(t) says whether
x(t) and x(t-1) have first components of the same sign. The recorded sequence is short, so
the unfolded figure is readable.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import tinygraph as tg
from tinygraph.optim import Adam

H, D, K = 8, 2, 2


def same_sign(T: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (T, D) and labels (T,): 1 when x(t)[0] and x(t-1)[0] share a sign (x(0) = 0)."""
    x = rng.normal(size=(T, D))
    prev = np.concatenate([[0.0], x[:-1, 0]])
    return x, (np.sign(x[:, 0]) == np.sign(prev)).astype(np.int64)


def elman_loop(params: dict, x: tg.Tensor, y: tg.Tensor) -> tuple[tg.Tensor, int]:
    """The loop as a user writes it; returns the summed loss and the number of correct labels."""
    W, U, V, b, c = (params[k] for k in "WUVbc")
    h = tg.zeros(H)
    total = 0
    correct = 0
    for t in range(len(x.data)):
        h = tg.tanh(W @ h + U @ x[t] + b)
        o = V @ h + c
        L = tg.cross_entropy(o, y[t])
        total = total + L
        correct += int(np.argmax(o.data) == y.data[t])
    return total, correct


def record_plain_loop(T: int = 5, train_steps: int = 150, seed: int = 0) -> tuple[Any, str]:
    """Train the plain loop briefly, then record one sequence of length ``T`` with its source.

    Parameters
    ----------
    T : int
        Length of the recorded sequence (the unfolded figure shows every step up to 8).
    train_steps : int
        Adam steps on random sequences of length 12 before recording.
    seed : int
        Seed of the data and the initial weights.

    Returns
    -------
    (tinygraph.Graph, str)
        The traced graph after ``backward(keep_grads=True)`` (no step tags, no names: viz
        infers them), and the held-out accuracy as text.

    Examples
    --------
    >>> g, score = record_plain_loop(T=5)                          # doctest: +SKIP
    >>> viz.render(viz.unfolded(g), "out/plain_loop_unfolded.png")  # doctest: +SKIP
    """
    rng = np.random.default_rng(seed)
    shapes = {"W": (H, H), "U": (H, D), "V": (K, H), "b": (H,), "c": (K,)}
    params = {k: tg.Parameter(rng.normal(size=s) / np.sqrt(s[-1]), name=k)
              for k, s in shapes.items()}
    opt = Adam(list(params.values()), lr=0.02)
    for _ in range(train_steps):
        x, y = same_sign(12, rng)
        opt.zero_grad()
        total, _ = elman_loop(params, tg.tensor(x), tg.tensor(y))
        total.backward()
        opt.step()
    right = n = 0
    with tg.no_grad():
        for _ in range(20):
            x, y = same_sign(12, rng)
            right += elman_loop(params, tg.tensor(x), tg.tensor(y))[1]
            n += len(y)
    x, y = same_sign(T, rng)
    tg.new_graph()
    with tg.recording(source=True):
        total, _ = elman_loop(params, tg.tensor(x), tg.tensor(y))
    total.backward(keep_grads=True)
    return tg.trace(total), f"held-out accuracy {right / n:.2f} (chance 0.5)"
