"""Hand-written numpy forward + BPTT of the Elman RNN, straight from the seed's formulas.

Flow: this file sits beside the engine, not in it. `tests/test_nn_bptt.py` checks tinygraph's
gradients against it to 1e-10, and `bench/bench_nn.py` times tinygraph against it.

The model (Deep Learning, ch. 10, eq. 10.8-10.11), written for a batch of row vectors:

    a(t) = b + W h(t-1) + U x(t)        h(t) = tanh(a(t))
    o(t) = c + V h(t)                   yhat(t) = softmax(o(t))
    L = sum_t L(t),  L(t) = -log yhat(t)[y(t)]   (summed over the batch as well)

and its backward pass, the seed's BPTT slide (each formula is a line below):

    grad o(t) = yhat(t) - y(t)
    grad h(tau) = V^T grad o(tau)
    grad h(t) = W^T diag(1 - h(t+1)^2) grad h(t+1) + V^T grad o(t)
    grad V = sum_t grad o(t) h(t)^T            grad c = sum_t grad o(t)
    grad W = sum_t diag(1 - h(t)^2) grad h(t) h(t-1)^T
    grad U = sum_t diag(1 - h(t)^2) grad h(t) x(t)^T
    grad b = sum_t diag(1 - h(t)^2) grad h(t)

Shapes: U (H, D), W (H, H), V (K, H), b (H,), c (K,); x (B, T, D) float; y (B, T) int;
h0 (B, H) or None (zeros). Lists indexed by time hold h(0)..h(tau) at positions 0..tau.
"""
from __future__ import annotations

import numpy as np


def _softmax(o: np.ndarray) -> np.ndarray:
    e = np.exp(o - o.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def elman_forward(U, W, V, b, c, x, y, h0=None):
    """Forward pass: returns (loss, hs, yhats) with hs[t] = h(t) for t = 0..tau."""
    B, T, _ = x.shape
    h = np.zeros((B, W.shape[0]), dtype=x.dtype) if h0 is None else h0
    hs = [h]
    yhats = [None]                       # yhat(t) at position t, t = 1..tau
    loss = 0.0
    rows = np.arange(B)
    for t in range(1, T + 1):
        h = np.tanh(b + hs[t - 1] @ W.T + x[:, t - 1] @ U.T)       # (B, H)
        yhat = _softmax(c + h @ V.T)                                # (B, K)
        loss -= np.log(yhat[rows, y[:, t - 1]]).sum()
        hs.append(h)
        yhats.append(yhat)
    return loss, hs, yhats


def elman_bptt(U, W, V, b, c, x, y, h0=None):
    """Forward + BPTT from the seed's formulas, one step at a time.

    Returns
    -------
    dict with ``loss``, the parameter gradients ``U W V b c``, ``h`` (h(t) for t = 0..tau),
    ``dh`` (grad h(t) at position t for t = 1..tau; position 0 holds grad h(0)), ``do``
    (grad o(t) at position t) and ``dW_t`` (each step's term of grad W, at position t).
    """
    B, T, _ = x.shape
    loss, hs, yhats = elman_forward(U, W, V, b, c, x, y, h0)
    rows = np.arange(B)
    do = [None] * (T + 1)
    for t in range(1, T + 1):
        do[t] = yhats[t].copy()
        do[t][rows, y[:, t - 1]] -= 1.0                 # grad o(t) = yhat(t) - y(t)
    dh = [None] * (T + 1)
    dU, dW, dV = np.zeros_like(U), np.zeros_like(W), np.zeros_like(V)
    db, dc = np.zeros_like(b), np.zeros_like(c)
    dW_t = [None] * (T + 1)
    dh[T] = do[T] @ V                                   # grad h(tau) = V^T grad o(tau)
    for t in range(T, 0, -1):
        if t < T:                                       # grad h(t) = W^T diag(1-h(t+1)^2) ... + V^T grad o(t)
            dh[t] = ((1.0 - hs[t + 1] ** 2) * dh[t + 1]) @ W + do[t] @ V
        da = (1.0 - hs[t] ** 2) * dh[t]                 # diag(1 - h(t)^2) grad h(t)
        dW_t[t] = da.T @ hs[t - 1]
        dW += dW_t[t]
        dU += da.T @ x[:, t - 1]
        db += da.sum(axis=0)
        dV += do[t].T @ hs[t]
        dc += do[t].sum(axis=0)
    dh[0] = ((1.0 - hs[1] ** 2) * dh[1]) @ W
    return {"loss": loss, "U": dU, "W": dW, "V": dV, "b": db, "c": dc,
            "h": hs, "dh": dh, "do": do, "dW_t": dW_t}


def elman_bptt_batched(U, W, V, b, c, x, y, h0=None):
    """The same gradients, with the input and output projections done for all steps at once.

    Only the h(t-1) -> h(t) recurrence stays a loop: the floor numpy can reach. Returns the
    parameter gradients and the loss (no per-step lists).
    """
    B, T, D = x.shape
    H = W.shape[0]
    a_in = x.reshape(B * T, D) @ U.T + b                          # (B*T, H)
    a_in = a_in.reshape(B, T, H).transpose(1, 0, 2)               # (T, B, H)
    hs = np.empty((T + 1, B, H), dtype=x.dtype)
    hs[0] = 0.0 if h0 is None else h0
    for t in range(1, T + 1):
        np.tanh(a_in[t - 1] + hs[t - 1] @ W.T, out=hs[t])
    hflat = hs[1:].transpose(1, 0, 2).reshape(B * T, H)           # (B*T, H), batch-major rows
    yhat = _softmax(hflat @ V.T + c)                              # (B*T, K)
    rows = np.arange(B * T)
    yflat = y.reshape(-1)
    loss = -np.log(yhat[rows, yflat]).sum()
    do = yhat
    do[rows, yflat] -= 1.0
    dV = do.T @ hflat
    dc = do.sum(axis=0)
    dh_out = (do @ V).reshape(B, T, H).transpose(1, 0, 2)         # (T, B, H): V^T grad o(t)
    da = np.empty_like(dh_out)
    carry = np.zeros((B, H), dtype=x.dtype)
    for t in range(T, 0, -1):
        da[t - 1] = (1.0 - hs[t] ** 2) * (dh_out[t - 1] + carry)
        carry = da[t - 1] @ W
    daf = da.reshape(T * B, H)
    dW = daf.T @ hs[:-1].reshape(T * B, H)
    dU = daf.T @ x.transpose(1, 0, 2).reshape(T * B, D)
    db = daf.sum(axis=0)
    return {"loss": loss, "U": dU, "W": dW, "V": dV, "b": db, "c": dc}


def random_elman(B=3, T=7, D=4, H=5, K=6, seed=0, scale=0.5):
    """A seeded random instance: (params dict U W V b c, x (B,T,D), y (B,T) int)."""
    rng = np.random.default_rng(seed)
    p = {"U": rng.standard_normal((H, D)) * scale, "W": rng.standard_normal((H, H)) * scale,
         "V": rng.standard_normal((K, H)) * scale, "b": rng.standard_normal(H) * 0.1,
         "c": rng.standard_normal(K) * 0.1}
    x = rng.standard_normal((B, T, D))
    y = rng.integers(0, K, size=(B, T))
    return p, x, y
