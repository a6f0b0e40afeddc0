"""Shape, indexing and selection primitives, plus the recorded ops that carry no gradient.

Flow: registered in `registry.OPS`; run through `tensor.apply`. `detach`, `argmax` and `one_hot`
are recorded (so views can draw the cut of truncated BPTT and the fed-back output of a
free-running RNN) but send no gradient back.
"""
from __future__ import annotations

import numpy as np

from .registry import SliceGrad, defop, unbroadcast


@defop("reshape", examples=lambda r: [([r.standard_normal((3, 4))], {"shape": (2, 6)}),
                                      ([r.standard_normal((3, 4))], {"shape": (-1,)})])
class Reshape:
    def forward(a, shape):
        return a.reshape(shape), (a.shape,)

    def backward(g, saved, need):
        return (g.reshape(saved[0]),)


@defop("transpose", examples=lambda r: [([r.standard_normal((3, 4))], {"axes": None}),
                                        ([r.standard_normal((2, 3, 4))], {"axes": (1, 2, 0)}),
                                        ([r.standard_normal((2, 3, 4))], {"axes": (-1, 0, 1)})])
class Transpose:
    def forward(a, axes=None):
        out = np.transpose(a, axes)  # checks that `axes` is a permutation (negatives allowed)
        if axes is None:
            return out, (None,)
        return out, (tuple(np.argsort([int(ax) % a.ndim for ax in axes])),)

    def backward(g, saved, need):
        return (np.transpose(g, saved[0]),)


@defop("unsqueeze", examples=lambda r: [([r.standard_normal((3, 4))], {"axis": 1}),
                                        ([r.standard_normal((3, 4))], {"axis": -1})])
class Unsqueeze:
    """A new axis of size 1 at `axis` (as torch.unsqueeze / numpy.expand_dims)."""

    def forward(a, axis):
        return np.expand_dims(a, axis), (a.shape,)

    backward = Reshape.backward


@defop("squeeze", examples=lambda r: [([r.standard_normal((3, 1, 4))], {"axis": None}),
                                      ([r.standard_normal((3, 1, 4))], {"axis": -2}),
                                      ([r.standard_normal((3, 1, 4))], {"axis": 0})])
class Squeeze:
    """Drop axes of size 1 (all of them when `axis` is None). As in PyTorch, an `axis` whose size
    is not 1 is left as it is."""

    def forward(a, axis=None):
        if axis is not None:
            axes = (axis,) if np.isscalar(axis) else tuple(axis)
            axis = tuple(ax for ax in axes if a.shape[ax] == 1)
        return np.squeeze(a, axis), (a.shape,)

    backward = Reshape.backward


@defop("astype", examples=lambda r: [([r.standard_normal((2, 3))], {"dtype": np.float64})],
       casts=True)
class Astype:
    """The same values in another float dtype; the gradient is cast back to the input's dtype.
    (`ops.astype` cuts the graph before a cast to a non-float dtype: integers take no
    gradient.)"""

    def forward(a, dtype):
        return a.astype(dtype), (a.dtype,)

    def backward(g, saved, need):
        return (g.astype(saved[0]),)


def _is_basic(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (slice, int, np.integer)) for i in items)


@defop("getitem", examples=lambda r: [
    ([r.standard_normal((4, 5))], {"index": (slice(1, 3), slice(None))}),
    ([r.standard_normal((4, 5))], {"index": 2}),
    ([r.standard_normal((4, 5))], {"index": (np.array([0, 2, 2]), slice(None))}),
    ([r.standard_normal((4, 5))], {"index": (np.array([0, 1, 3]), np.array([4, 4, 0]))})])
class Getitem:
    def forward(a, index):
        return a[index], (a.shape, a.dtype, index)

    def backward(g, saved, need):
        shape, dtype, index = saved
        if _is_basic(index):
            return (SliceGrad(shape, dtype, index, g),)
        full = np.zeros(shape, dtype=dtype)
        np.add.at(full, index, g)  # repeated indices accumulate (scatter-add)
        return (full,)


def _concat_examples(r):
    return [([r.standard_normal((2, 3)), r.standard_normal((4, 3))], {"axis": 0}),
            ([r.standard_normal((2, 3)), r.standard_normal((2, 1)), r.standard_normal((2, 2))],
             {"axis": 1})]


@defop("concat", examples=_concat_examples)
class Concat:
    def forward(*arrays, axis=0):
        cuts = tuple(np.cumsum([x.shape[axis] for x in arrays])[:-1].tolist())
        return np.concatenate(arrays, axis=axis), (cuts, axis)

    def backward(g, saved, need):
        cuts, axis = saved
        return tuple(np.split(g, cuts, axis=axis))


@defop("stack", examples=lambda r: [([r.standard_normal((2, 3)) for _ in range(3)], {"axis": 0}),
                                    ([r.standard_normal((2, 3)) for _ in range(2)], {"axis": -1})])
class Stack:
    def forward(*arrays, axis=0):
        return np.stack(arrays, axis=axis), (axis,)

    def backward(g, saved, need):
        return tuple(np.moveaxis(g, saved[0], 0))


@defop("split", examples=lambda r: [([r.standard_normal((5, 3))],
                                     {"start": 1, "stop": 4, "axis": 0}),
                                    ([r.standard_normal((2, 6))],
                                     {"start": 0, "stop": 2, "axis": 1})])
class SplitPart:
    """One piece ``[start:stop]`` along `axis`; `ops.split` records one such node per piece."""

    def forward(a, start, stop, axis=0):
        index = (slice(None),) * (axis % a.ndim) + (slice(start, stop),)
        return a[index], (a.shape, a.dtype, index)

    def backward(g, saved, need):
        return (SliceGrad(*saved, g),)


@defop("where", examples=lambda r: [([r.standard_normal((3, 4)), r.standard_normal((3, 4))],
                                     {"cond": r.standard_normal((3, 4)) > 0}),
                                    ([r.standard_normal((3, 4)), r.standard_normal((4,))],
                                     {"cond": r.standard_normal((1, 4)) > 0})])
class Where:
    def forward(a, b, cond):
        return np.where(cond, a, b), (cond, a.shape, b.shape)

    def backward(g, saved, need):
        cond, sa, sb = saved
        return (unbroadcast(np.where(cond, g, 0.0), sa) if need[0] else None,
                unbroadcast(np.where(cond, 0.0, g), sb) if need[1] else None)


@defop("identity", examples=lambda r: [([r.standard_normal((2, 3))], {})])
class Identity:
    """The same values as a new node: gives a value a second name (the context C = h(n))."""

    def forward(a):
        return a, ()

    def backward(g, saved, need):
        return (g,)


@defop("detach")
class Detach:
    def forward(a):
        return a, None


@defop("argmax")
class Argmax:
    def forward(a, axis=-1):
        return np.argmax(a, axis=axis), None


@defop("one_hot")
class OneHot:
    def forward(ids, num_classes, dtype=np.float64):
        if ids.dtype.kind not in "iu":
            raise TypeError(f"ids must be integers, got {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
            raise ValueError(f"ids must lie in [0, {num_classes}), got min {ids.min()} "
                             f"and max {ids.max()}")
        return np.eye(num_classes, dtype=dtype)[ids], None
