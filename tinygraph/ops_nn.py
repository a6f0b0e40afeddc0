"""Neural-network primitives: softmax, log_softmax, the losses, embedding lookup.

Flow: registered in `registry.OPS`; run through `tensor.apply`. The losses fuse their backward
(``softmax - onehot``) and save only what it needs: the softmax, never the logits.
"""
from __future__ import annotations

import numpy as np

from .registry import defop, floating


@defop("softmax", examples=lambda r: [([r.standard_normal((3, 5))], {"axis": -1}),
                                      ([r.standard_normal((3, 5))], {"axis": 0})])
class Softmax:
    def forward(a, axis=-1):
        a = floating(a)
        e = np.exp(a - np.max(a, axis=axis, keepdims=True))
        out = e / np.sum(e, axis=axis, keepdims=True)
        return out, (out, axis)

    def backward(g, saved, need):
        out, axis = saved
        return (out * (g - np.sum(g * out, axis=axis, keepdims=True)),)


@defop("log_softmax", examples=lambda r: [([r.standard_normal((3, 5))], {"axis": -1})])
class LogSoftmax:
    def forward(a, axis=-1):
        a = floating(a)
        shifted = a - np.max(a, axis=axis, keepdims=True)
        out = shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
        return out, (out, axis)

    def backward(g, saved, need):
        out, axis = saved
        return (g - np.exp(out) * np.sum(g, axis=axis, keepdims=True),)


def _check_targets(logits, targets, ignore_index=None):
    if targets.dtype.kind not in "iu":
        raise TypeError(f"targets must be integer class ids, got dtype {targets.dtype}")
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"targets of shape {targets.shape} do not match logits of shape "
                         f"{logits.shape} (expected targets of shape {logits.shape[:-1]})")
    k = logits.shape[-1]
    bad = (targets < 0) | (targets >= k)
    if ignore_index is not None:
        bad &= targets != ignore_index
    if targets.size and bad.any():
        raise ValueError(f"target {targets[bad].ravel()[0]} is out of range for {k} classes "
                         f"(expected 0..{k - 1}"
                         + (f", or ignore_index={ignore_index})" if ignore_index is not None
                            else ")"))


_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


@defop("cross_entropy", examples=lambda r: [
    ([r.standard_normal((4, 5)), r.integers(0, 5, 4)], {"reduction": red})
    for red in _REDUCTIONS] + [([r.standard_normal(5), np.array(2)], {})] + [
    ([r.standard_normal((4, 5)), np.array([1, -100, 3, 0])], {"reduction": red})
    for red in ("mean", "none")] + [
    ([r.standard_normal((4, 5)), np.array([1, 2, 3, 2])], {"ignore_index": 2})])
class CrossEntropy:
    """Softmax cross-entropy; targets equal to `ignore_index` add nothing (as PyTorch: the mean
    is over the other targets, NaN when none is left; their `none` entries are 0)."""

    def forward(logits, targets, reduction="mean", ignore_index=-100):
        _check_reduction(reduction)
        logits = floating(logits)
        _check_targets(logits, targets, ignore_index)
        shape = targets.shape
        k = logits.shape[-1]
        z2 = logits.reshape(-1, k)                   # (N, K): any leading shape, flattened
        t = targets.reshape(-1)
        keep = None
        if (t == ignore_index).any():
            keep = t != ignore_index
            t = np.where(keep, t, 0)                 # any valid class; the row is zeroed below
        rows = np.arange(t.size)
        shifted = z2 - np.max(z2, axis=-1, keepdims=True)
        e = np.exp(shifted)
        z = np.sum(e, axis=-1)
        p = e / z[:, None]                           # softmax: the only saved buffer
        losses = np.log(z) - shifted[rows, t]
        if keep is None:
            n = max(losses.size, 1)
        else:
            losses = losses * keep
            n = int(keep.sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            out = losses.reshape(shape) if reduction == "none" else \
                losses.sum() / (n if reduction == "mean" else 1)
        return np.asarray(out, dtype=logits.dtype), (p, t, reduction, n, logits.shape, keep)

    def backward(g, saved, need):
        p, t, reduction, n, shape, keep = saved
        d = p.copy()
        d[np.arange(t.size), t] -= 1.0               # softmax - onehot
        if keep is not None:
            d *= keep[:, None]
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
        logp = floating(logp)
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
        pred, target = floating(pred), floating(target)
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
        if weight.ndim != 2:
            raise ValueError(f"the table must be 2-D (V, D), got shape {weight.shape}")
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
