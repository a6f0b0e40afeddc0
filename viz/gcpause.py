"""Pausing Python's cyclic garbage collector while `viz` builds large graphs.

Flow: below viz.schema: used by viz.schema (load), viz.columnar, viz.levels, viz.fold and
viz.unfold, the stages that build one attribute dict per node of a long recording.
"""
from __future__ import annotations

import contextlib
import functools
import gc
from typing import Any, Callable, Iterator


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a view builds its graph.

    Building a million attribute dicts triggers full collections that walk every one of them
    again (half of ``load``'s time at 10^5 nodes); these graphs hold no reference cycles to
    reclaim, so the collector runs once, when the outermost pause ends, as it would have.
    """
    if not gc.isenabled():  # nested, or the caller turned it off: leave it as it is
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def without_gc(fn: Callable) -> Callable:
    """Decorator: run ``fn`` under :func:`paused_gc`."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with paused_gc():
            return fn(*args, **kwargs)
    return wrapper
