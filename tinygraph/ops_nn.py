"""Neural-network primitives: softmax, log_softmax, the losses, embedding lookup.

Flow: registered in `registry.OPS`; run through `tensor.apply`. The losses fuse their backward
(``softmax - onehot``) and save only what it needs: the softmax, never the logits.
"""
from __future__ import annotations

import numpy as np

from .registry import defop


@defop("softmax", examples=lambda r: [([r.standard_normal((3, 5))], {"axis": -1}),
                                      ([r.standard_normal((3, 5))], {"axis": 0})])
class Softmax:
    def forward(a, axis=-1):
        e = np.exp(a - np.max(a, axis=axis, keepdims=True))
        out = e / np.sum(e, axis=axis, keepdims=True)
        return out, (out, axis)

    def backward(g, saved, need):
        out, axis = saved
        return (out * (g - np.sum(g * out, axis=axis, keepdims=True)),)


@defop("log_softmax", examples=lambda r: [([r.standard_normal((3, 5))], {"axis": -1})])
class LogSoftmax:
    def forward(a, axis=-1):
        shifted = a - np.max(a, axis=axis, keepdims=True)
        out = shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
        return out, (out, axis)

    def backward(g, saved, need):
        out, axis = saved
        return (g - np.exp(out) * np.sum(g, axis=axis, keepdims=True),)


def _check_targets(logits, targets):
    if targets.dtype.kind not in "iu":
        raise TypeError(f"targets must be integer class ids, got dtype {targets.dtype}")
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"targets of shape {targets.shape} do not match logits of shape "
                         f"{logits.shape} (expected targets of shape {logits.shape[:-1]})")
    k = logits.shape[-1]
    if targets.size and (targets.min() < 0 or targets.max() >= k):
        bad = targets[(targets < 0) | (targets >= k)].ravel()[0]
        raise ValueError(f"target {bad} is out of range for {k} classes (expected 0..{k - 1})")


_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


@defop("cross_entropy", examples=lambda r: [
    ([r.standard_normal((4, 5)), r.integers(0, 5, 4)], {"reduction": red})
    for red in _REDUCTIONS] + [([r.standard_normal(5), np.array(2)], {})])
class CrossEntropy:
    def forward(logits, targets, reduction="mean"):
        _check_reduction(reduction)
        _check_targets(logits, targets)
        shape = targets.shape
        k = logits.shape[-1]
        z2 = logits.reshape(-1, k)                   # (N, K): any leading shape, flattened
        t = targets.reshape(-1)
        rows = np.arange(t.size)
        shifted = z2 - np.max(z2, axis=-1, keepdims=True)
        e = np.exp(shifted)
        z = np.sum(e, axis=-1)
        p = e / z[:, None]                           # softmax: the only saved buffer
        losses = np.log(z) - shifted[rows, t]
        n = max(losses.size, 1)
        out = losses.reshape(shape) if reduction == "none" else \
            losses.sum() / (n if reduction == "mean" else 1)
        return np.asarray(out, dtype=logits.dtype), (p, t, reduction, n, logits.shape)

    def backward(g, saved, need):
        p, t, reduction, n, shape = saved
        d = p.copy()
        d[np.arange(t.size), t] -= 1.0               # softmax - onehot
        if reduction == "none":
            d *= g.reshape(-1, 1)
        else:
            d *= g / n if reduction == "mean" else g
        return (d.reshape(shape), None)


@defop("nll_loss", examples=lambda r: [
    ([r.standard_normal((4, 5)), r.integers(0, 5, 4)], {"reduction": red})
    for red in _REDUCTIONS])
class NllLoss:
    """Negative log-likelihood of log-probabilities (..., K) at integer targets (...)."""

    def forward(logp, targets, reduction="mean"):
        _check_reduction(reduction)
        _check_targets(logp, targets)
        k = logp.shape[-1]
        t = targets.reshape(-1)
        losses = -logp.reshape(-1, k)[np.arange(t.size), t]
        n = max(losses.size, 1)
        out = losses.reshape(targets.shape) if reduction == "none" else \
            losses.sum() / (n if reduction == "mean" else 1)
        return np.asarray(out, dtype=logp.dtype), (t, reduction, n, logp.shape, logp.dtype)

    def backward(g, saved, need):
        t, reduction, n, shape, dtype = saved
        d = np.zeros((t.size, shape[-1]), dtype=dtype)
        scale = g.reshape(-1) if reduction == "none" else (g / n if reduction == "mean" else g)
        d[np.arange(t.size), t] = -scale
        return (d.reshape(shape), None)


@defop("mse_loss", examples=lambda r: [([r.standard_normal((3, 4)), r.standard_normal((3, 4))],
                                        {"reduction": red}) for red in _REDUCTIONS])
class MseLoss:
    def forward(pred, target, reduction="mean"):
        _check_reduction(reduction)
        if pred.shape != target.shape:
            raise ValueError(f"prediction of shape {pred.shape} and target of shape "
                             f"{target.shape} differ")
        diff = pred - target
        sq = diff * diff
        out = sq if reduction == "none" else (sq.sum() if reduction == "sum" else sq.mean())
        scale = 2.0 / max(diff.size, 1) if reduction == "mean" else 2.0
        return np.asarray(out, dtype=diff.dtype), (diff, scale)

    def backward(g, saved, need):
        diff, scale = saved
        d = g * scale * diff
        return (d if need[0] else None, -d if need[1] else None)


@defop("embedding", examples=lambda r: [([r.standard_normal((6, 3)), np.array([[0, 2], [5, 2]])],
                                         {})])
class Embedding:
    def forward(weight, ids):
        if ids.dtype.kind not in "iu":
            raise TypeError(f"ids must be integers, got dtype {ids.dtype}")
        v = weight.shape[0]
        if ids.size and (ids.min() < 0 or ids.max() >= v):
            raise ValueError(f"ids must lie in [0, {v}) for a table of {v} rows, got min "
                             f"{ids.min()} and max {ids.max()}")
        return weight[ids], (weight.shape, ids)

    def backward(g, saved, need):
        shape, ids = saved
        full = np.zeros(shape, dtype=g.dtype)
        np.add.at(full, ids.ravel(), g.reshape(-1, shape[1]))
        return (full, None)
