"""The tape: where every op is recorded, in execution order.

Flow: model code -> **tape** -> backward sweep / export -> viz.

A `Tape` is a list of `Node`s. A node's id is its index in that list, so the list is already in
topological order and backward is one reverse sweep over it. Tensors made by ops hold a strong
reference to their tape; the tape holds no reference to them (only to leaves), so there are no
reference cycles and a tape is freed by refcounting as soon as the last tensor of it goes.

This module also holds the recording state (`scope`, `step`, `no_grad`, the debug switches) that
stamps every node.
"""
from __future__ import annotations

import contextlib
import os
import sys
import weakref
from typing import Any, Callable, Iterator


class Node:
    """One recorded op (or a leaf) of a tape; `inputs` are tape indices, in argument order."""

    __slots__ = ("op", "inputs", "vjp", "need", "shape", "dtype", "kind", "name", "scope",
                 "step", "requires_grad", "leaf", "src", "value_norm")

    def __init__(self, op: str, inputs: tuple, vjp: Any, need: tuple, shape: tuple, dtype: Any,
                 kind: str, scope: str, step: int | None, requires_grad: bool,
                 leaf: Any = None) -> None:
        self.op = op
        self.inputs = inputs
        self.vjp = vjp
        self.need = need
        self.shape = shape
        self.dtype = dtype
        self.kind = kind
        self.name = None
        self.scope = scope
        self.step = step
        self.requires_grad = requires_grad
        self.leaf = leaf
        self.src = None
        self.value_norm = None


def _freed(g: Any, need: tuple) -> None:  # placeholder vjp of a node whose buffers were released
    raise RuntimeError("freed")


FREED = _freed


class Tape:
    """An append-only record of nodes, plus what backward and export need beside them."""

    __slots__ = ("nodes", "leaves", "hooks", "retained", "grad_norms", "edge_norms", "node_grads",
                 "contribs", "released", "__weakref__")

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.leaves: dict[int, int] = {}          # id(tensor) -> node index (the node keeps it alive)
        self.hooks: dict[int, list[Callable]] = {}
        self.retained: dict[int, weakref.ref] = {}
        self.grad_norms: dict[int, float] = {}     # filled by backward(keep_grads=True)
        self.edge_norms: dict[tuple[int, int], float] = {}
        self.node_grads: dict[int, Any] = {}
        self.contribs: dict[tuple[int, int], Any] = {}  # (leaf, consumer) -> contribution
        self.released = False

    def __len__(self) -> int:
        return len(self.nodes)


class _State:
    __slots__ = ("grad_enabled", "scope", "step", "source", "values", "anomaly", "tape_ref")

    def __init__(self) -> None:
        self.grad_enabled = True
        self.scope = ""
        self.step: int | None = None
        self.source = False      # record the user's source line for every node
        self.values = False      # record the value norm of every node
        self.anomaly = False     # detect_anomaly(): check every forward and backward value
        self.tape_ref: Callable[[], Tape | None] = lambda: None


STATE = _State()


def current_tape() -> Tape:
    """The tape new ops append to; a fresh one when the last was released or freed."""
    tape = STATE.tape_ref()
    if tape is None or tape.released:
        tape = Tape()
        STATE.tape_ref = weakref.ref(tape)
    return tape


def new_graph() -> None:
    """Start a fresh tape for the ops that follow (older tensors become leaves of it)."""
    STATE.tape_ref = lambda: None


def where(scope: str | None = None, step: int | None = None) -> str:
    """`" at encoder/cell step 3"`: the place an error message names."""
    scope = STATE.scope if scope is None else scope
    step = STATE.step if step is None else step
    text = f" at {scope}" if scope else " at top level"
    return text + (f" step {step}" if step is not None else "")


@contextlib.contextmanager
def scope(name: str) -> Iterator[str]:
    """Stamp every node created inside with the scope path (`outer/name`)."""
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"scope: name must be a non-empty string without '/', got {name!r}")
    old = STATE.scope
    STATE.scope = f"{old}/{name}" if old else name
    try:
        yield STATE.scope
    finally:
        STATE.scope = old


@contextlib.contextmanager
def step(t: int | None) -> Iterator[int | None]:
    """Stamp every node created inside with the time step `t`."""
    if t is not None and (isinstance(t, bool) or not isinstance(t, (int,)) and not hasattr(t, "__index__")):
        raise TypeError(f"step: t must be an int or None, got {type(t).__name__}")
    old = STATE.step
    STATE.step = None if t is None else int(t)
    try:
        yield STATE.step
    finally:
        STATE.step = old


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Record nothing and build no graph inside (inference)."""
    old = STATE.grad_enabled
    STATE.grad_enabled = False
    try:
        yield
    finally:
        STATE.grad_enabled = old


@contextlib.contextmanager
def recording(source: bool = True, values: bool = False) -> Iterator[None]:
    """Also record each node's source line (`source`) and value norm (`values`)."""
    old = (STATE.source, STATE.values)
    STATE.source, STATE.values = bool(source), bool(values)
    try:
        yield
    finally:
        STATE.source, STATE.values = old


_PKG_DIR = os.path.dirname(os.path.abspath(__file__))


def user_frame_line() -> str | None:
    """`file.py:line` of the first caller outside the engine core (tinygraph/nn counts as user)."""
    frame = sys._getframe(1)
    while frame is not None:
        fname = frame.f_code.co_filename
        if os.path.dirname(os.path.abspath(fname)) != _PKG_DIR and "contextlib" not in fname:
            return f"{os.path.relpath(fname) if not fname.startswith('<') else fname}:{frame.f_lineno}"
        frame = frame.f_back
    return None
