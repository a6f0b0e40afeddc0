"""The tape: where every op is recorded, in execution order.

Flow: model code -> **tape** -> backward sweep / export -> viz.

A `Tape` is a record of nodes. A node's id is its index in that record, so the list is already in
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
from dataclasses import dataclass
from typing import Any, Callable, Iterator, NamedTuple


@dataclass(frozen=True)
class Node:
    """A read-only view of one recorded node (made on demand by `Tape.node`)."""

    id: int
    op: str
    inputs: tuple
    kind: str
    name: str | None
    shape: tuple
    dtype: Any
    scope: str
    step: int | None
    requires_grad: bool
    src: str | None
    value_norm: float | None


class Meta(NamedTuple):
    """The per-node metadata fields, read by name: ``Meta._make(tape.meta[i]).scope``.

    The tape itself stores plain tuples in this field order: a NamedTuple instance stays tracked
    by Python's garbage collector (a plain tuple of atoms is untracked), and measured on 300,000
    nodes it costs 4x the construction time and 5x the time of a full collection.
    """

    shape: tuple
    dtype: Any
    kind: str
    scope: str
    step: int | None
    requires_grad: bool


FREED = False  # the `saved` entry of a node whose buffers backward released


class Tape:
    """An append-only record of nodes, kept as parallel lists (one entry per node).

    Per node: `ops` (the op class, None for a leaf), `inputs` (tuple of node ids, argument order
    kept), `saved` (what its backward needs; None when no gradient flows; FREED once released),
    `need` (which inputs take a gradient) and `meta` = (shape, dtype, kind, scope, step,
    requires_grad). Everything per node is a tuple of atoms and arrays, which Python's garbage
    collector stops tracking: a long tape costs it next to nothing. Sparse facts live in dicts.
    """

    __slots__ = ("ops", "inputs", "saved", "need", "meta", "names", "leaf", "leaves", "foreign", "external",
                 "src", "value_norms", "hooks", "retained", "grad_norms", "edge_norms",
                 "node_grads", "contribs", "released", "versions", "__weakref__")

    def __init__(self) -> None:
        self.ops: list[Any] = []
        self.inputs: list[tuple] = []
        self.saved: list[Any] = []
        self.need: list[tuple] = []
        self.meta: list[tuple] = []
        self.names: dict[int, str] = {}
        self.leaf: dict[int, Any] = {}              # node id -> leaf tensor (kept alive here)
        self.leaves: dict[int, int] = {}            # id(leaf tensor) -> node id
        self.foreign: dict[int, weakref.ref] = {}   # leaves made by an older, released tape
        self.external: set[int] = set()             # ... of those, the ones that require grad
        self.src: dict[int, str] = {}
        self.value_norms: dict[int, float] = {}
        self.hooks: dict[int, list[Callable]] = {}
        self.retained: dict[int, weakref.ref] = {}
        self.grad_norms: dict[int, float] = {}      # filled by backward(keep_grads=True)
        self.edge_norms: dict[tuple[int, int], float] = {}
        self.node_grads: dict[int, Any] = {}
        self.contribs: dict[tuple[int, int], Any] = {}  # (param leaf, consumer) -> contribution
        self.released = False
        self.versions: dict[int, int] = {}          # leaf node id -> its tensor's version when recorded

    def __len__(self) -> int:
        return len(self.ops)

    def op_name(self, i: int) -> str:
        op = self.ops[i]
        return "leaf" if op is None else op.name

    def node(self, i: int) -> Node:
        """The node with id `i` as a read-only record."""
        m = Meta._make(self.meta[i])
        return Node(i, self.op_name(i), self.inputs[i], m.kind, self.names.get(i), m.shape,
                    m.dtype, m.scope, m.step, m.requires_grad, self.src.get(i),
                    self.value_norms.get(i))


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
_INSIDE: dict[Any, bool] = {}      # code object -> defined in the engine core (not user code)
_SHORT: dict[str, str] = {}        # file name -> how error messages and exports print it


def _short(fname: str) -> str:
    if fname.startswith("<"):
        return fname
    rel = os.path.relpath(fname)
    return os.path.basename(fname) if rel.startswith("..") else rel


def user_frame_line() -> str | None:
    """`file.py:line` of the first caller outside the engine core (tinygraph/nn counts as user)."""
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        inside = _INSIDE.get(code)
        if inside is None:
            fname = code.co_filename
            inside = _INSIDE[code] = (os.path.dirname(os.path.abspath(fname)) == _PKG_DIR
                                      or fname == contextlib.__file__)
        if not inside:
            fname = code.co_filename
            short = _SHORT.get(fname)
            if short is None:
                short = _SHORT[fname] = _short(fname)
            return f"{short}:{frame.f_lineno}"
        frame = frame.f_back
    return None
