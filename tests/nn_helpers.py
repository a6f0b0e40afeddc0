"""Shared helpers of the tinygraph.nn tests: swap a module's parameters for gradcheck inputs."""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import numpy as np

import tinygraph as tg
from tinygraph import nn


@contextlib.contextmanager
def swapped(module: nn.Module, tensors: list) -> Iterator[None]:
    """Use `tensors` in place of the module's parameters (same order) for the duration."""
    slots = [(mod, key) for _, mod in module.named_modules() for key in mod._params]
    old = [getattr(mod, key) for mod, key in slots]
    try:
        for (mod, key), t in zip(slots, tensors):
            object.__setattr__(mod, key, t)
        yield
    finally:
        for (mod, key), p in zip(slots, old):
            object.__setattr__(mod, key, p)


def module_gradcheck(module: nn.Module, loss_fn: Callable[[], tg.Tensor]) -> tg.GradcheckResult:
    """gradcheck of ``loss_fn()`` with respect to every parameter of `module`."""
    params = module.parameters()

    def fn(*ts):
        with swapped(module, list(ts)):
            return loss_fn()
    return tg.gradcheck(fn, params, atol=1e-7, rtol=1e-6)


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |b|: the relative error the BPTT tests bound."""
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))
