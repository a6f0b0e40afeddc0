"""Arithmetic, elementwise, matmul and reduction primitives: forward and vjp side by side.

Flow: registered in `registry.OPS` by `@defop`; called through `tensor.apply`, which records one
node per call. Every vjp returns one gradient per input, reduced to that input's shape.
"""
from __future__ import annotations

import numpy as np

from .registry import defop, unbroadcast


def _pair(r, sa=(3, 4), sb=(3, 4)):
    return [r.standard_normal(sa), r.standard_normal(sb)]


_BCAST = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (2, 3))]


@defop("add", examples=lambda r: [(_pair(r, a, b), {}) for a, b in _BCAST])
def add(a, b):
    sa, sb = a.shape, b.shape
    return a + b, lambda g, need: (unbroadcast(g, sa) if need[0] else None,
                                   unbroadcast(g, sb) if need[1] else None)


@defop("sub", examples=lambda r: [(_pair(r, a, b), {}) for a, b in _BCAST])
def sub(a, b):
    sa, sb = a.shape, b.shape
    return a - b, lambda g, need: (unbroadcast(g, sa) if need[0] else None,
                                   unbroadcast(-g, sb) if need[1] else None)


@defop("mul", examples=lambda r: [(_pair(r, a, b), {}) for a, b in _BCAST])
def mul(a, b):
    return a * b, lambda g, need: (unbroadcast(g * b, a.shape) if need[0] else None,
                                   unbroadcast(g * a, b.shape) if need[1] else None)


@defop("div", examples=lambda r: [([r.standard_normal(a), r.uniform(0.5, 2.0, b)], {})
                                  for a, b in _BCAST])
def div(a, b):
    out = a / b
    return out, lambda g, need: (unbroadcast(g / b, a.shape) if need[0] else None,
                                 unbroadcast(-g * out / b, b.shape) if need[1] else None)


@defop("neg", examples=lambda r: [([r.standard_normal((3, 4))], {})])
def neg(a):
    return -a, lambda g, need: (-g,)


@defop("pow", examples=lambda r: [([r.uniform(0.5, 2.0, (3, 4))], {"exponent": p})
                                  for p in (2, 3, 0.5, -1.5)])
def pow(a, exponent):
    if not np.isscalar(exponent):
        raise TypeError(f"exponent must be a Python number, got {type(exponent).__name__}")
    out = a ** exponent
    return out, lambda g, need: (g * exponent * a ** (exponent - 1),)


@defop("exp", examples=lambda r: [([r.standard_normal((3, 4))], {})])
def exp(a):
    out = np.exp(a)
    return out, lambda g, need: (g * out,)


@defop("log", examples=lambda r: [([r.uniform(0.5, 3.0, (3, 4))], {})])
def log(a):
    return np.log(a), lambda g, need: (g / a,)


@defop("tanh", examples=lambda r: [([r.standard_normal((3, 4))], {})])
def tanh(a):
    out = np.tanh(a)
    return out, lambda g, need: (g * (1.0 - out * out),)


@defop("sigmoid", examples=lambda r: [([r.standard_normal((3, 4)) * 3], {})])
def sigmoid(a):
    # the two-branch form never overflows exp
    e = np.exp(-np.abs(a))
    out = np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(a.dtype, copy=False)
    return out, lambda g, need: (g * out * (1.0 - out),)


@defop("relu", examples=lambda r: [([r.standard_normal((3, 4)) + 0.05], {})])
def relu(a):
    mask = a > 0
    return a * mask, lambda g, need: (g * mask,)


def _matmul_examples(r):
    shapes = [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)),
              ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)), ((3, 4), (2, 4, 5))]
    return [([r.standard_normal(a), r.standard_normal(b)], {}) for a, b in shapes]


@defop("matmul", examples=_matmul_examples)
def matmul(a, b):
    out = a @ b

    def vjp(g, need):
        ga = gb = None
        if a.ndim == 1 and b.ndim == 1:          # inner product
            return (g * b if need[0] else None, g * a if need[1] else None)
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = np.expand_dims(g2, -2)
        if b.ndim == 1:
            g2 = np.expand_dims(g2, -1)
        if need[0]:
            ga = g2 @ np.swapaxes(b2, -1, -2)
            ga = ga[..., 0, :] if a.ndim == 1 else ga
            ga = unbroadcast(ga, a.shape)
        if need[1]:
            gb = np.swapaxes(a2, -1, -2) @ g2
            gb = gb[..., :, 0] if b.ndim == 1 else gb
            gb = unbroadcast(gb, b.shape)
        return ga, gb
    return out, vjp


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if np.isscalar(axis) else tuple(axis)
    return tuple(int(ax) % ndim if ndim else 0 for ax in axes)


def _expand(g, shape, axis, keepdims):
    """Give a reduced gradient back the reduced axes so it broadcasts against the input."""
    if not keepdims and shape:
        g = np.expand_dims(g, _axes(axis, len(shape)))
    return g


_RED = [((3, 4), {}), ((3, 4), {"axis": 0}), ((3, 4), {"axis": -1, "keepdims": True}),
        ((2, 3, 4), {"axis": (0, 2)})]


@defop("sum", examples=lambda r: [([r.standard_normal(s)], k) for s, k in _RED])
def sum(a, axis=None, keepdims=False):
    shape = a.shape
    return (np.sum(a, axis=axis, keepdims=keepdims),
            lambda g, need: (np.broadcast_to(_expand(g, shape, axis, keepdims), shape),))


@defop("mean", examples=lambda r: [([r.standard_normal(s)], k) for s, k in _RED])
def mean(a, axis=None, keepdims=False):
    shape = a.shape
    out = np.mean(a, axis=axis, keepdims=keepdims)
    n = a.size // out.size if out.size else 1

    def vjp(g, need):
        return (np.broadcast_to(_expand(g, shape, axis, keepdims) / n, shape).astype(a.dtype,
                                                                                       copy=False),)
    return out, vjp


@defop("max", examples=lambda r: [([r.permutation(np.arange(s[0] * s[1] * 1.0)).reshape(s)], k)
                                  for s, k in _RED[:3]])
def max(a, axis=None, keepdims=False):
    out = np.max(a, axis=axis, keepdims=keepdims)

    def vjp(g, need):
        full = _expand(out, a.shape, axis, keepdims)
        mask = a == full
        # ties share the gradient equally
        count = np.sum(mask, axis=_axes(axis, a.ndim), keepdims=True)
        return (mask * (_expand(g, a.shape, axis, keepdims) / count),)
    return out, vjp
