"""The op table: one entry per primitive, holding its forward+vjp function and test examples.

Flow: `tinygraph.ops` defines each primitive with `@defop`; `tensor.apply` runs it and records a
node named after it; tests walk `OPS` so every op is gradchecked without being listed twice.

A primitive is a function of numpy arrays ``fn(*arrays, **static) -> (out, vjp)`` where
``vjp(g, need) -> tuple`` returns one gradient per array input (``None`` where there is none, or
where ``need[i]`` is False), already reduced to that input's shape. ``vjp`` is ``None`` for ops
that have no gradient (argmax, one_hot, detach).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class OpDef:
    """A registered primitive: its name (the node's `op`), function and example calls."""

    name: str
    fn: Callable
    differentiable: bool = True
    # each example: (list of array inputs, dict of static kwargs); used by gradcheck tests
    examples: tuple = field(default=(), repr=False)


OPS: dict[str, OpDef] = {}


def defop(name: str, differentiable: bool = True, examples: Callable[[np.random.Generator], list]
          | None = None) -> Callable:
    """Register ``fn`` under ``name`` (a lowercase numpy-style name)."""
    def wrap(fn: Callable) -> Callable:
        if name in OPS:
            raise ValueError(f"defop: op {name!r} is registered twice")
        ex = tuple(examples(np.random.default_rng(0))) if examples else ()
        OPS[name] = OpDef(name, fn, differentiable, ex)
        return fn
    return wrap


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
