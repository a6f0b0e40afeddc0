"""Arithmetic, elementwise, matmul and reduction primitives: forward and backward side by side.

Flow: registered in `registry.OPS` by `@defop`; run through `tensor.apply`, which records one
node per call. Every backward returns one gradient per input, reduced to that input's shape.
"""
from __future__ import annotations

import numpy as np

from .registry import defop, floating, unbroadcast

_BCAST = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (2, 3))]


def _pairs(r, low=None):
    if low is None:
        return [([r.standard_normal(a), r.standard_normal(b)], {}) for a, b in _BCAST]
    return [([r.standard_normal(a), r.uniform(low, 2.0, b)], {}) for a, b in _BCAST]


def _shapes(a, b):
    """What add/sub keep for backward: nothing when no broadcasting happened."""
    return () if a.shape == b.shape else (a.shape, b.shape)


@defop("add", examples=_pairs)
class Add:
    def forward(a, b):
        return a + b, _shapes(a, b)

    def backward(g, saved, need):
        if not saved:
            return (g, g)
        sa, sb = saved
        return (unbroadcast(g, sa) if need[0] else None, unbroadcast(g, sb) if need[1] else None)


@defop("sub", examples=_pairs)
class Sub:
    def forward(a, b):
        return a - b, _shapes(a, b)

    def backward(g, saved, need):
        if not saved:
            return (g, -g if need[1] else None)
        sa, sb = saved
        return (unbroadcast(g, sa) if need[0] else None, unbroadcast(-g, sb) if need[1] else None)


@defop("mul", examples=_pairs)
class Mul:
    fresh = True  # its backward returns new arrays only (see registry)

    def forward(a, b):
        return a * b, (a, b)

    def backward(g, saved, need):
        a, b = saved
        return (unbroadcast(g * b, a.shape) if need[0] else None,
                unbroadcast(g * a, b.shape) if need[1] else None)


@defop("div", examples=lambda r: _pairs(r, low=0.5))
class Div:
    fresh = True  # its backward returns new arrays only (see registry)

    def forward(a, b):
        out = a / b
        return out, (out, a.shape, b)

    def backward(g, saved, need):
        out, sa, b = saved
        return (unbroadcast(g / b, sa) if need[0] else None,
                unbroadcast(-g * out / b, b.shape) if need[1] else None)


@defop("neg", examples=lambda r: [([r.standard_normal((3, 4))], {})])
class Neg:
    fresh = True  # its backward returns new arrays only (see registry)

    def forward(a):
        return -a, ()

    def backward(g, saved, need):
        return (-g,)


@defop("pow", examples=lambda r: [([r.uniform(0.5, 2.0, (3, 4))], {"exponent": p})
                                  for p in (2, 3, 0.5, -1.5, 0)])
class Pow:
    fresh = True  # its backward returns new arrays only (see registry)

    def forward(a, exponent):
        return a ** exponent, (a, exponent)

    def backward(g, saved, need):
        a, p = saved
        if p == 0:  # d/da a**0 = 0 everywhere, also at a = 0 (where p * a**(p-1) is 0 * inf)
            return (np.zeros_like(g),)
        return (g * p * a ** (p - 1),)


@defop("exp", examples=lambda r: [([r.standard_normal((3, 4))], {})])
class Exp:
    fresh = True  # its backward returns new arrays only (see registry)

    def forward(a):
        out = np.exp(floating(a))
        return out, (out,)

    def backward(g, saved, need):
        return (g * saved[0],)


@defop("log", examples=lambda r: [([r.uniform(0.5, 3.0, (3, 4))], {})])
class Log:
    fresh = True  # its backward returns new arrays only (see registry)

    def forward(a):
        a = floating(a)
        return np.log(a), (a,)

    def backward(g, saved, need):
        return (g / saved[0],)


@defop("tanh", examples=lambda r: [([r.standard_normal((3, 4))], {})])
class Tanh:
    fresh = True  # its backward returns new arrays only (see registry)

    def forward(a):
        out = np.tanh(floating(a))
        return out, (out,)

    def backward(g, saved, need):
        out = saved[0]
        return (g * (1.0 - out * out),)


@defop("sigmoid", examples=lambda r: [([r.standard_normal((3, 4)) * 3], {})])
class Sigmoid:
    fresh = True  # its backward returns new arrays only (see registry)

    def forward(a):
        a = floating(a)
        e = np.exp(-np.abs(a))  # the two-branch form never overflows exp
        out = np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(a.dtype, copy=False)
        return out, (out,)

    def backward(g, saved, need):
        out = saved[0]
        return (g * out * (1.0 - out),)


@defop("relu", examples=lambda r: [([r.standard_normal((3, 4)) + 0.05], {})])
class Relu:
    fresh = True  # its backward returns new arrays only (see registry)

    def forward(a):
        mask = a > 0
        return a * mask, (mask,)

    def backward(g, saved, need):
        return (g * saved[0],)


@defop("abs", examples=lambda r: [([r.standard_normal((3, 4)) + 0.05], {})])
class Abs:
    fresh = True  # its backward returns new arrays only (see registry)

    def forward(a):
        return np.abs(a), (a,)

    def backward(g, saved, need):
        return (g * np.sign(saved[0]),)  # 0 at 0, as PyTorch


@defop("sqrt", examples=lambda r: [([r.uniform(0.5, 3.0, (3, 4))], {})])
class Sqrt:
    fresh = True  # its backward returns new arrays only (see registry)

    def forward(a):
        out = np.sqrt(floating(a))
        return out, (out,)

    def backward(g, saved, need):
        return (g / (2 * saved[0]),)


@defop("log1p", examples=lambda r: [([r.uniform(-0.5, 3.0, (3, 4))], {})])
class Log1p:
    fresh = True  # its backward returns new arrays only (see registry)

    def forward(a):
        a = floating(a)
        return np.log1p(a), (a,)

    def backward(g, saved, need):
        return (g / (1 + saved[0]),)


@defop("clamp", examples=lambda r: [([r.standard_normal((3, 4))], k) for k in
                                    ({"min": -0.5, "max": 0.5}, {"min": 0.1}, {"max": -0.2})])
class Clamp:
    """Clip to [min, max] (either may be None); the gradient passes where min <= a <= max."""

    fresh = True  # its backward returns new arrays only (see registry)

    def forward(a, min=None, max=None):
        out = a
        if min is not None:
            out = np.maximum(out, np.asarray(min, dtype=a.dtype))
        if max is not None:
            out = np.minimum(out, np.asarray(max, dtype=a.dtype))
        return out, (a, min, max)

    def backward(g, saved, need):
        a, lo, hi = saved
        keep = np.ones(a.shape, dtype=bool)
        if lo is not None:
            keep &= a >= lo
        if hi is not None:
            keep &= a <= hi
        return (g * keep,)


def _share(a, b, wins, dtype):
    """Weight of `a` in an elementwise max/min: 1 where it wins, 1/2 on ties (as PyTorch)."""
    return (wins(a, b) + 0.5 * (a == b)).astype(dtype, copy=False)


def _pick_backward(wins):
    def backward(g, saved, need):
        a, b = saved
        wa = _share(a, b, wins, g.dtype)
        return (unbroadcast(g * wa, a.shape) if need[0] else None,
                unbroadcast(g * (1 - wa), b.shape) if need[1] else None)
    return backward


@defop("maximum", examples=_pairs)
class Maximum:
    fresh = True  # its backward returns new arrays only (see registry)

    def forward(a, b):
        return np.maximum(a, b), (a, b)

    backward = staticmethod(_pick_backward(np.greater))


@defop("minimum", examples=_pairs)
class Minimum:
    fresh = True  # its backward returns new arrays only (see registry)

    def forward(a, b):
        return np.minimum(a, b), (a, b)

    backward = staticmethod(_pick_backward(np.less))


def _matmul_examples(r):
    shapes = [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)),
              ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)), ((3, 4), (2, 4, 5))]
    return [([r.standard_normal(a), r.standard_normal(b)], {}) for a, b in shapes]


def _fortran(x):
    """True for an F-ordered 2-D array that is not also C-ordered (a transposed weight)."""
    f = x.flags
    return f.f_contiguous and not f.c_contiguous


@defop("matmul", examples=_matmul_examples)
class Matmul:
    fresh = True  # its backward returns new arrays only (see registry)

    def forward(a, b):
        return a @ b, (a, b)

    def backward(g, saved, need):
        a, b = saved
        if a.ndim == 2 and b.ndim == 2:  # the common case, kept short
            # each gradient in its operand's layout (same GEMM, transposed): for ``h @ W.T``
            # the gradient of W.T comes out F-ordered, so the transpose's backward hands W a
            # C-ordered one and every step adds into W's gradient contiguously (a strided add
            # costs 6x at H = 128, 16x at H = 512)
            ga = gb = None
            if need[0]:
                ga = (b @ g.T).T if _fortran(a) else g @ b.T
            if need[1]:
                gb = (g.T @ a).T if _fortran(b) else a.T @ g
            return ga, gb
        if a.ndim == 1 and b.ndim == 1:  # inner product
            return (g * b if need[0] else None, g * a if need[1] else None)
        if b.ndim == 2 and a.ndim > 2:  # a stack of rows times one matrix: no batched temporary
            gb = None
            if need[1]:
                a2, g2 = a.reshape(-1, a.shape[-1]), g.reshape(-1, g.shape[-1])
                gb = (g2.T @ a2).T if _fortran(b) else a2.T @ g2
            return (g @ b.T if need[0] else None, gb)
        # 1-D operands act as a row (left) or a column (right) matrix; batched dims broadcast
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = np.expand_dims(g, -2) if a.ndim == 1 else g
        g2 = np.expand_dims(g2, -1) if b.ndim == 1 else g2
        ga = gb = None
        if need[0]:
            ga = g2 @ np.swapaxes(b2, -1, -2)
            ga = unbroadcast(ga[..., 0, :] if a.ndim == 1 else ga, a.shape)
        if need[1]:
            gb = np.swapaxes(a2, -1, -2) @ g2
            gb = unbroadcast(gb[..., :, 0] if b.ndim == 1 else gb, b.shape)
        return ga, gb


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
class Sum:
    def forward(a, axis=None, keepdims=False):
        return np.sum(a, axis=axis, keepdims=keepdims), (a.shape, axis, keepdims)

    def backward(g, saved, need):
        shape, axis, keepdims = saved
        return (np.broadcast_to(_expand(g, shape, axis, keepdims), shape),)


@defop("mean", examples=lambda r: [([r.standard_normal(s)], k) for s, k in _RED])
class Mean:
    def forward(a, axis=None, keepdims=False):
        out = np.mean(a, axis=axis, keepdims=keepdims)
        n = a.size // out.size if out.size else 1
        return out, (a.shape, axis, keepdims, n)

    def backward(g, saved, need):
        shape, axis, keepdims, n = saved
        return (np.broadcast_to(_expand(g, shape, axis, keepdims) / n, shape),)


def _extreme(reduce):
    """Forward and backward of a max or min reduction; the gradient goes to the elements equal
    to the result, and ties share it."""
    def forward(a, axis=None, keepdims=False):
        out = reduce(a, axis=axis, keepdims=keepdims)
        return out, (a, out, axis, keepdims)

    def backward(g, saved, need):
        a, out, axis, keepdims = saved
        mask = a == _expand(out, a.shape, axis, keepdims)
        count = np.sum(mask, axis=_axes(axis, a.ndim), keepdims=True).astype(a.dtype)
        return (mask * (_expand(g, a.shape, axis, keepdims) / count),)
    return staticmethod(forward), staticmethod(backward)


_EXTREME = lambda r: [([r.permutation(np.arange(12.0)).reshape(s)], k)  # noqa: E731
                      for s, k in _RED[:3]]


@defop("max", examples=_EXTREME)
class Max:
    fresh = True  # its backward returns new arrays only (see registry)

    forward, backward = _extreme(np.max)


@defop("min", examples=_EXTREME)
class Min:
    fresh = True  # its backward returns new arrays only (see registry)

    forward, backward = _extreme(np.min)
