"""A fused Elman recurrence: the loop h(1..tau) as one recorded op, its backward the seed's BPTT.

Flow: `RNN(..., fused=True)` computes the input projections U x(t) of all steps in one op, runs
this primitive (``elman_scan``) over them, and reads the outputs o(t) = c + V h(t) of all steps
in one matmul; per-step views of h(t) and o(t) (``getitem`` inside ``tg.step(t)``, named ``h``
and ``o``) feed `sequence_loss` as before. Fewer, larger ops than the per-step recording
(``fused=False``, the default), with the same loss and gradients.

Not yet: the export does not expand the ``elman_scan`` node into the per-step nodes of the
book's graph, so a fused run is drawn with one node for the recurrence, and the per-step views
``out.h[t]`` are read-only slices (o(t) reads all states at once), so ``keep_grads`` gives them
no gradient: the total grad h(t) stays inside the scan's backward. Record per step (the
default) to draw the graph or read grad h(t).
"""
from __future__ import annotations

import numpy as np

from tinygraph.registry import defop


def _examples(r: np.random.Generator) -> list:
    T, B, H = 4, 2, 3
    return [([r.standard_normal((T, B, H)), 0.5 * r.standard_normal((H, H)),
              r.standard_normal(H), r.standard_normal((B, H))], {})]


@defop("elman_scan", examples=_examples, public=False)
class ElmanScan:
    """h(t) = tanh(a(t) + W h(t-1) + b) for t = 1..tau, from a(t) = U x(t) (tau, B, H).

    Inputs ``(xu (tau, B, H), W (H, H), b (H,), h0 (B, H))``; output every h(t), (tau, B, H).
    The backward is the seed's BPTT: with grad h(t) = g(t) + W^T diag(1 - h(t+1)^2) grad h(t+1),
    grad a(t) = diag(1 - h(t)^2) grad h(t), grad W = sum_t grad a(t) h(t-1)^T, grad b =
    sum_t grad a(t), grad h(0) = W^T grad a(1) (the last two sums as one GEMM each).
    """

    def forward(xu, W, b, h0):
        T = xu.shape[0]
        out = np.empty(xu.shape, dtype=np.result_type(xu, W, h0))
        WT, h = W.T, h0
        for t in range(T):
            h = out[t] = np.tanh(xu[t] + h @ WT + b)
        return out, (out, W, h0, b.shape)

    def backward(g, saved, need):
        hs, W, h0, bshape = saved
        T, B, H = hs.shape
        da = 1.0 - hs * hs                           # tanh'(a(t)), then grad a(t) in place
        carry = np.zeros((B, H), dtype=hs.dtype)     # W^T grad a(t+1), flowing into h(t)
        for t in range(T - 1, -1, -1):
            dt = da[t]
            dt *= g[t] + carry
            carry = dt @ W
        gW = gb = None
        if need[1]:                                  # sum_t grad a(t) h(t-1)^T
            gW = da[0].T @ h0
            if T > 1:
                gW += da[1:].reshape((T - 1) * B, H).T @ hs[:-1].reshape((T - 1) * B, H)
        if need[2]:
            gb = da.reshape(T * B, H).sum(axis=0).reshape(bshape)
        return (da if need[0] else None, gW, gb, carry if need[3] else None)
