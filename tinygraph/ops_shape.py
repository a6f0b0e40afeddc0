"""Shape, indexing and selection primitives, plus the recorded ops that carry no gradient.

Flow: registered in `registry.OPS`; called through `tensor.apply`. `detach`, `argmax` and
`one_hot` are recorded (so views can draw the cut of truncated BPTT and the fed-back output of a
free-running RNN) but send no gradient back.
"""
from __future__ import annotations

import numpy as np

from .registry import defop, unbroadcast


@defop("reshape", examples=lambda r: [([r.standard_normal((3, 4))], {"shape": (2, 6)}),
                                      ([r.standard_normal((3, 4))], {"shape": (-1,)})])
def reshape(a, shape):
    old = a.shape
    return a.reshape(shape), lambda g, need: (g.reshape(old),)


@defop("transpose", examples=lambda r: [([r.standard_normal((3, 4))], {"axes": None}),
                                        ([r.standard_normal((2, 3, 4))], {"axes": (1, 2, 0)})])
def transpose(a, axes=None):
    inv = None if axes is None else tuple(np.argsort(axes))
    return np.transpose(a, axes), lambda g, need: (np.transpose(g, inv),)


def _is_basic(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (slice, int, np.integer)) for i in items)


@defop("getitem", examples=lambda r: [
    ([r.standard_normal((4, 5))], {"index": (slice(1, 3), slice(None))}),
    ([r.standard_normal((4, 5))], {"index": 2}),
    ([r.standard_normal((4, 5))], {"index": (np.array([0, 2, 2]), slice(None))}),
    ([r.standard_normal((4, 5))], {"index": (np.array([0, 1, 3]), np.array([4, 4, 0]))})])
def getitem(a, index):
    out = a[index]
    shape, dtype = a.shape, a.dtype

    def vjp(g, need):
        full = np.zeros(shape, dtype=dtype)
        if _is_basic(index):
            full[index] = g
        else:
            np.add.at(full, index, g)  # repeated indices accumulate (scatter-add)
        return (full,)
    return out, vjp


def _concat_examples(r):
    return [([r.standard_normal((2, 3)), r.standard_normal((4, 3))], {"axis": 0}),
            ([r.standard_normal((2, 3)), r.standard_normal((2, 1)), r.standard_normal((2, 2))],
             {"axis": 1})]


@defop("concat", examples=_concat_examples)
def concat(*arrays, axis=0):
    out = np.concatenate(arrays, axis=axis)
    cuts = np.cumsum([x.shape[axis] for x in arrays])[:-1]
    return out, lambda g, need: tuple(np.split(g, cuts, axis=axis))


@defop("stack", examples=lambda r: [([r.standard_normal((2, 3)) for _ in range(3)], {"axis": 0}),
                                    ([r.standard_normal((2, 3)) for _ in range(2)], {"axis": -1})])
def stack(*arrays, axis=0):
    out = np.stack(arrays, axis=axis)
    return out, lambda g, need: tuple(np.moveaxis(g, axis, 0))


@defop("split", examples=lambda r: [([r.standard_normal((5, 3))],
                                     {"start": 1, "stop": 4, "axis": 0}),
                                    ([r.standard_normal((2, 6))],
                                     {"start": 0, "stop": 2, "axis": 1})])
def split_part(a, start, stop, axis=0):
    """One piece ``[start:stop]`` along `axis`; `ops.split` makes one such node per piece."""
    index = (slice(None),) * (axis % a.ndim) + (slice(start, stop),)
    shape, dtype = a.shape, a.dtype

    def vjp(g, need):
        full = np.zeros(shape, dtype=dtype)
        full[index] = g
        return (full,)
    return a[index], vjp


@defop("where", examples=lambda r: [([r.standard_normal((3, 4)), r.standard_normal((3, 4))],
                                     {"cond": r.standard_normal((3, 4)) > 0}),
                                    ([r.standard_normal((3, 4)), r.standard_normal((4,))],
                                     {"cond": r.standard_normal((1, 4)) > 0})])
def where(a, b, cond):
    out = np.where(cond, a, b)
    return out, lambda g, need: (unbroadcast(np.where(cond, g, 0.0), a.shape) if need[0] else None,
                                 unbroadcast(np.where(cond, 0.0, g), b.shape) if need[1] else None)


@defop("detach", differentiable=False)
def detach(a):
    return a, None


@defop("argmax", differentiable=False)
def argmax(a, axis=-1):
    return np.argmax(a, axis=axis), None


@defop("one_hot", differentiable=False)
def one_hot(ids, num_classes, dtype=np.float64):
    if ids.dtype.kind not in "iu":
        raise TypeError(f"ids must be integers, got {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
        raise ValueError(f"ids must lie in [0, {num_classes}), got min {ids.min()} "
                         f"and max {ids.max()}")
    return np.eye(num_classes, dtype=dtype)[ids], None
