"""The op table: one small class per primitive, forward and backward side by side.

Flow: `tinygraph.ops_*` define each primitive with `@defop`; `tensor.apply` runs its forward and
records a node named after it; the backward sweep calls its backward; tests walk `OPS` so every
op is gradchecked without being listed twice.

A primitive is a class with two plain functions:

- ``forward(*arrays, **static) -> (out, saved)``: `saved` is a tuple of what backward needs
  (arrays, shapes, the static arguments), nothing more;
- ``backward(g, saved, need) -> tuple``: one gradient per array input (``None`` where there is
  none or where ``need[i]`` is False), already reduced to that input's shape.

Ops with no gradient (argmax, one_hot, detach) set ``backward = None``. An op whose backward
returns only arrays it has just allocated (never `g` itself, a saved array, or a view of either)
sets ``fresh = True``: the sweep then adds later contributions into that array in place instead
of copying it first (tests check the claim for every op that makes it). Ops that only make sense
on real numbers (exp, tanh, the losses, ...) call `floating` on their inputs: an integer tensor
is promoted to the default float dtype instead of being truncated. Keeping `saved` a plain
tuple rather than a closure matters: tuples of arrays drop out of Python's garbage collector, so a
tape of 10^5 nodes costs the collector almost nothing.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

OPS: dict[str, type] = {}
DEFAULT_DTYPE = np.float64  # what Python floats, and integers meeting a float op, become


def defop(name: str, examples: Callable[[np.random.Generator], list] | None = None,
          casts: bool = False, public: bool = True) -> Callable:
    """Register an op class under `name` (a lowercase numpy-style name, the node's `op`).

    `examples(rng)` returns ``[(list of input arrays, dict of static kwargs), ...]`` for tests.
    `casts` marks an op whose output dtype is an argument (``astype``), not its input's.
    Every op has a public function of the same name (`tinygraph.ops`, checked at import), except
    the model-level primitives that `tinygraph.nn` records for its modules (``public=False``,
    e.g. ``elman_scan``): users reach those through the module, not as a function.
    """
    def wrap(cls: type) -> type:
        if name in OPS:
            raise ValueError(f"defop: op {name!r} is registered twice")
        cls.name = name
        cls.casts = casts
        cls.public = public
        cls.differentiable = getattr(cls, "backward", None) is not None
        if not hasattr(cls, "backward"):
            cls.backward = None
        cls.fresh = bool(getattr(cls, "fresh", False))
        cls.examples = tuple(examples(np.random.default_rng(0))) if examples else ()
        OPS[name] = cls
        return cls
    return wrap


def floating(a: np.ndarray) -> np.ndarray:
    """`a` itself when it holds floats, else `a` promoted to the default float dtype."""
    return a if a.dtype.kind == "f" else a.astype(DEFAULT_DTYPE)


def unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `g` down to `shape`, undoing numpy broadcasting (leading and size-1 axes)."""
    if g.shape == shape:
        return g
    extra = g.ndim - len(shape)
    if extra:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g


class SliceGrad:
    """The gradient of one basic-indexed piece: `value` at `index` of an all-zero `shape` array.

    `getitem` and `split` return it so that the backward sweep adds the pieces of a sequence
    into one buffer in place, instead of allocating a full-size zero array per time step.
    """

    __slots__ = ("shape", "dtype", "index", "value")

    def __init__(self, shape: tuple, dtype: np.dtype, index: tuple, value: np.ndarray) -> None:
        self.shape, self.dtype, self.index, self.value = shape, dtype, index, value

    def dense(self) -> np.ndarray:
        full = np.zeros(self.shape, dtype=self.dtype)
        full[self.index] = self.value
        return full


def densify(g: "np.ndarray | SliceGrad") -> np.ndarray:
    """A plain array for any gradient the sweep may hold."""
    return g.dense() if g.__class__ is SliceGrad else g
