"""The tape: where every op is recorded, in execution order.

Flow: model code -> **tape** -> backward sweep / export -> viz.

A `Tape` is a record of nodes. A node's id is its index in that record, so the list is already in
topological order and backward is one reverse sweep over it. Tensors made by ops hold a strong
reference to their tape; the tape holds no reference to them (only to leaves), so there are no
reference cycles and a tape is freed by refcounting as soon as the last tensor of it goes.

This module also holds the recording state (`scope`, `step`, `no_grad`, the debug switches and
the current tape) that stamps every node: one per thread and per asyncio task, kept in a
`contextvars.ContextVar` (`current_state`), and the source lines (`user_frame`) recorded with it.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import linecache
import os
import sys
import threading
import weakref
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Callable, Generator, NamedTuple


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
                 "src", "code", "value_norms", "hooks", "retained", "grad_norms", "edge_norms",
                 "node_grads", "contribs", "released", "versions", "owner", "__weakref__")

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
        self.src: dict[int, str] = {}               # node id -> `file.py:line` (recording source)
        self.code: dict[int, str] = {}              # node id -> that line of code, stripped
        self.value_norms: dict[int, float] = {}
        self.hooks: dict[int, list[Callable]] = {}
        self.retained: dict[int, weakref.ref] = {}
        self.grad_norms: dict[int, float] = {}      # filled by backward(keep_grads=True)
        self.edge_norms: dict[tuple[int, int], float] = {}
        self.node_grads: dict[int, Any] = {}
        self.contribs: dict[tuple[int, int], Any] = {}  # (param leaf, consumer) -> contribution
        self.released = False
        self.versions: dict[int, int] = {}          # leaf node id -> its tensor's version when recorded
        self.owner: Any = None                      # the thread / task recording on it

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


# ------------------------------------------------------------------------------------------------
# Recording state: one per thread and per asyncio task (contextvars)
# ------------------------------------------------------------------------------------------------

class _Home:
    """Where one thread or asyncio task records: its current tape (held weakly) and its owner.

    The one mutable part of the recording state, on purpose: a generator run in its own context
    (`isolated`) copies the state but shares this home with its caller, so both keep recording on
    the same tape even when one of them starts a new tape.
    """

    __slots__ = ("tape_ref", "owner")

    def __init__(self, owner: Any) -> None:
        self.tape_ref: Callable[[], Tape | None] = _no_tape
        self.owner = owner


def _no_tape() -> None:
    return None


class RecordingState:
    """The switches that stamp every recorded node, as seen by one thread / asyncio task.

    Never changed in place: a context (`scope`, `step`, `no_grad`, ...) sets a changed copy in a
    `contextvars.ContextVar` and sets its old values back on exit, so threads, asyncio tasks and
    `isolated` generators each see their own. `apply` reads it once per op (`current_state()`).
    """

    __slots__ = ("grad_enabled", "scope", "step", "source", "values", "anomaly", "home")

    def __init__(self, home: _Home) -> None:
        self.grad_enabled = True
        self.scope = ""
        self.step: int | None = None
        self.source = False      # record the user's source line for every node
        self.values = False      # record the value norm of every node
        self.anomaly = False     # detect_anomaly(): check every forward and backward value
        self.home = home

    def copy(self) -> RecordingState:
        # written out: `step` and `scope` contexts copy the state once per time step
        new = _new(RecordingState)
        new.grad_enabled, new.scope, new.step = self.grad_enabled, self.scope, self.step
        new.source, new.values, new.anomaly = self.source, self.values, self.anomaly
        new.home = self.home
        return new

    def changed(self, changes: dict[str, Any]) -> RecordingState:
        """A copy with `changes` applied."""
        new = self.copy()
        for k, v in changes.items():
            setattr(new, k, v)
        return new


_new = object.__new__
_NOBODY = object()  # the owner of the default state's home: no thread or task ever matches it
# A thread starts with the default; its first recorded op gives it its own home (see `_home`).
_STATE: ContextVar[RecordingState] = ContextVar("tinygraph_recording",
                                                default=RecordingState(_Home(_NOBODY)))
current_state = _STATE.get  # the recording state of this thread / task (the hot path calls it)
_ident = threading.get_ident


class _CurrentState:
    """``STATE.scope``, ``STATE.step`` ...: this thread's / task's switches, read-only.

    For code that reads the switches (adapters); the hot path calls `current_state()` directly.
    They are set only through the contexts (`scope`, `step`, `no_grad`, `recording`).
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        return getattr(_STATE.get(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"STATE.{name} is read-only: the recording state is per thread and "
                             f"task; set it with tg.scope / tg.step / tg.no_grad / tg.recording")


STATE = _CurrentState()
_running_loop = asyncio.events._get_running_loop  # None outside a running loop (C, fast)


def owner() -> Any:
    """Who is recording: the running asyncio task, else the thread (its ident)."""
    loop = _running_loop()
    if loop is not None:
        task = asyncio.current_task(loop)
        if task is not None:
            return task
    return _ident()


def _home() -> _Home:
    """This thread's / task's home; made on its first use (a task or a thread handed a copied
    context, e.g. by `asyncio.to_thread`, inherits its creator's state but never its tape)."""
    st = _STATE.get()
    home = st.home
    me = owner()
    if home.owner != me:
        home = _Home(me)
        _STATE.set(st.changed({"home": home}))
    return home


def current_tape() -> Tape:
    """The tape new ops append to; a fresh one when the last was released or freed."""
    home = _home()
    tape = home.tape_ref()
    if tape is None or tape.released:
        tape = Tape()
        tape.owner = home.owner
        home.tape_ref = weakref.ref(tape)
    return tape


def last_tape() -> Tape | None:
    """The tape this thread / task recorded on last (None if there is none or it was freed)."""
    home = _STATE.get().home
    return home.tape_ref() if home.owner == owner() else None


def new_graph() -> None:
    """Start a fresh tape for the ops that follow (older tensors become leaves of it)."""
    _home().tape_ref = _no_tape


def where(scope: str | None = None, step: int | None = None) -> str:
    """`" at encoder/cell step 3"`: the place an error message names."""
    st = _STATE.get()
    scope = st.scope if scope is None else scope
    step = st.step if step is None else step
    text = f" at {scope}" if scope else " at top level"
    return text + (f" step {step}" if step is not None else "")


class Switch:
    """A context manager that sets fields of the recording state for its body, then sets them back.

    Only the fields it changed are set back (not the whole old state), so a home made inside the
    body (a task's first op) survives it.
    """

    __slots__ = ("changes", "old", "result")

    def __init__(self, changes: dict[str, Any], result: Any = None) -> None:
        self.changes, self.result = changes, result

    def __enter__(self) -> Any:
        cur = _STATE.get()
        self.old = {k: getattr(cur, k) for k in self.changes}
        _STATE.set(cur.changed(self.changes))
        return self.result

    def __exit__(self, *exc: Any) -> None:
        _STATE.set(_STATE.get().changed(self.old))


class _Step:
    # `Switch` for the one field set once per time step, written out (it runs once per step)
    __slots__ = ("t", "old")

    def __init__(self, t: int | None) -> None:
        self.t = t

    def __enter__(self) -> int | None:
        cur = _STATE.get()
        self.old = cur.step
        new = cur.copy()
        new.step = self.t
        _STATE.set(new)
        return self.t

    def __exit__(self, *exc: Any) -> None:
        new = _STATE.get().copy()
        new.step = self.old
        _STATE.set(new)


class _Scope:
    __slots__ = ("name", "old")

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> str:
        cur = _STATE.get()
        self.old = outer = cur.scope  # read on entry: the path nests where the `with` runs
        new = cur.copy()
        new.scope = path = f"{outer}/{self.name}" if outer else self.name
        _STATE.set(new)
        return path

    def __exit__(self, *exc: Any) -> None:
        new = _STATE.get().copy()
        new.scope = self.old
        _STATE.set(new)


def scope(name: str) -> contextlib.AbstractContextManager[str]:
    """Stamp every node created inside with the scope path (`outer/name`)."""
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"scope: name must be a non-empty string without '/', got {name!r}")
    return _Scope(name)


def step(t: int | None) -> contextlib.AbstractContextManager[int | None]:
    """Stamp every node created inside with the time step `t`."""
    if t is not None and (isinstance(t, bool) or not isinstance(t, (int,)) and not hasattr(t, "__index__")):
        raise TypeError(f"step: t must be an int or None, got {type(t).__name__}")
    return _Step(None if t is None else int(t))


def no_grad() -> contextlib.AbstractContextManager[None]:
    """Record nothing and build no graph inside (inference)."""
    return Switch({"grad_enabled": False})


def recording(source: bool = True, values: bool = False) -> contextlib.AbstractContextManager[None]:
    """Also record each node's source line (`source`) and value norm (`values`)."""
    return Switch({"source": bool(source), "values": bool(values)})


def isolated(gen: Generator) -> Generator:
    """Run a generator in its own recording context: its `scope`/`step`/`no_grad` stay its own.

    A generator shares its caller's context, so a ``with tg.scope(...)`` open across a ``yield``
    would stamp the caller's ops too (and two interleaved generators would nest each other's
    scopes). Wrapped, each step runs in a copy of the caller's context taken now; it still records
    on the caller's tape, so gradients flow between them.

    Parameters
    ----------
    gen : generator

    Returns
    -------
    generator
        Yields what `gen` yields; `send`, `throw` and `close` are passed on.

    Examples
    --------
    >>> def steps():
    ...     with scope("gen"):
    ...         for t in range(2):
    ...             yield current_state().scope
    >>> g = isolated(steps())
    >>> next(g), current_state().scope, next(g)
    ('gen', '', 'gen')
    """
    ctx = contextvars.copy_context()
    return _drive(ctx, gen)


def _drive(ctx: contextvars.Context, gen: Generator) -> Generator:
    send, value = gen.send, None
    while True:
        try:
            item = ctx.run(send, value)
        except StopIteration as stop:
            return stop.value
        try:
            value = yield item
            send = gen.send
        except GeneratorExit:
            ctx.run(gen.close)
            raise
        except BaseException as e:  # noqa: BLE001 - passed on to the generator, as yield from does
            send, value = gen.throw, e


# ------------------------------------------------------------------------------------------------
# Source lines: where in the user's code a node was made
# ------------------------------------------------------------------------------------------------

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
_INSIDE: dict[Any, bool] = {}      # code object -> defined in the engine core (not user code)
_SHORT: dict[str, str] = {}        # file name -> how error messages and exports print it
_LINES: dict[tuple[str, int], tuple[str, str | None]] = {}  # (file, line) -> (src, code)
PROJECT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git")


def short_path(fname: str) -> str:
    """How `src` names a file: the same wherever the program was started from.

    The path from the nearest enclosing project root (the closest folder holding one of
    `PROJECT_MARKERS`), e.g. ``examples/demo.py``; outside any project, the path from above its
    outermost package (``pkg/mod.py``, or just ``script.py``). Names like ``<stdin>`` stay.
    """
    if fname.startswith("<"):
        return fname
    path = os.path.abspath(fname)
    folder = os.path.dirname(path)
    while True:
        if any(os.path.exists(os.path.join(folder, m)) for m in PROJECT_MARKERS):
            return os.path.relpath(path, folder).replace(os.sep, "/")
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    top = os.path.dirname(path)
    while os.path.exists(os.path.join(top, "__init__.py")):
        top = os.path.dirname(top)
    return os.path.relpath(path, top).replace(os.sep, "/")


def user_frame() -> tuple[str, str | None] | None:
    """(`file.py:line`, the stripped line of code) of the first caller outside the engine core.

    tinygraph/nn counts as user code. Both are cached per (file, line): a loop records the same
    few lines again and again.
    """
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        inside = _INSIDE.get(code)
        if inside is None:
            fname = code.co_filename
            inside = _INSIDE[code] = (os.path.dirname(os.path.abspath(fname)) == _PKG_DIR
                                      or fname == contextlib.__file__)
        if not inside:
            key = (code.co_filename, frame.f_lineno)
            here = _LINES.get(key)
            if here is None:
                here = _LINES[key] = source_line(*key)
            return here
        frame = frame.f_back
    return None


def source_line(fname: str, line: int) -> tuple[str, str | None]:
    """(`path/file.py:line`, the stripped code of that line or None): what `src` and `code` say."""
    short = _SHORT.get(fname)
    if short is None:
        short = _SHORT[fname] = short_path(fname)
    text = linecache.getline(fname, line).strip() if line else ""
    return f"{short}:{line}", text or None


def user_frame_line() -> str | None:
    """`file.py:line` of the first caller outside the engine core (see `user_frame`)."""
    here = user_frame()
    return None if here is None else here[0]


def record_source(tape: Tape, idx: int) -> None:
    """Record node `idx`'s source line and its code text (under `recording(source=True)`)."""
    here = user_frame()
    if here is not None:
        tape.src[idx], code = here
        if code is not None:
            tape.code[idx] = code
