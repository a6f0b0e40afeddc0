"""Tensor: a numpy array plus what the tape needs to know about it.

Flow: model code calls ops on Tensors -> `apply` runs the op's forward and appends a Node to the
current tape -> backward sweeps that tape. This module holds the Tensor class and `apply` (the one
hot path every op goes through); the creation functions build on it in `creation`. It imports only the tape (and the
anomaly checks): the Tensor methods that need the ops or the sweep (``backward``, ``detach``,
the operators) are installed by `ops` and `autograd`, which build on this module.

What copies and what shares (as in PyTorch): `tensor()` and `Parameter()` copy the data they
are given; `as_tensor()` and `from_numpy()` share it (no copy when the dtype already fits), as
does the low-level ``Tensor(data)`` constructor.
"""
from __future__ import annotations

import numbers
import weakref
from typing import Any, Callable

import numpy as np

from . import tape as _tp
from .anomaly import check_forward
from .registry import DEFAULT_DTYPE
from .tape import Meta, Tape, current_state

_SCALARS = (numbers.Number, np.generic)


class Tensor:
    """An n-dimensional array that records the ops applied to it.

    Parameters
    ----------
    data : array_like
        The value. Python floats and float arrays become float64 unless `dtype` says otherwise.
    requires_grad : bool
        Whether backward should compute a gradient for this tensor (floats only).
    name : str, optional
        A label for graph views: ``x``, ``h``, ``W`` ...
    dtype : numpy dtype, optional
    """

    # op outputs never set `_hooks` (their hooks live on the tape): read it with getattr
    __slots__ = ("data", "_grad", "requires_grad", "_name", "_tape", "_idx", "_hooks", "_born",
                 "_version", "__weakref__")
    __array_priority__ = 1000  # so ndarray + Tensor calls Tensor.__radd__

    def __init__(self, data: Any, requires_grad: bool = False, name: str | None = None,
                 dtype: Any = None) -> None:
        arr = to_array(data, dtype, "tensor")
        if requires_grad and arr.dtype.kind != "f":
            raise TypeError(f"tensor: requires_grad=True needs a floating dtype, got {arr.dtype} "
                            f"(integer tensors hold indices and targets and never take gradients)")
        self.data = arr
        self._grad = None
        self.requires_grad = bool(requires_grad)
        self._name = name
        self._tape: Tape | None = None
        self._idx = -1
        self._hooks: list | None = None
        self._born = current_state().step  # the step this tensor was made in (its leaf's step)
        self._version = 0  # bumped by in-place updates (optimizers), checked by backward

    # -- properties -----------------------------------------------------------------------------
    @property
    def grad(self) -> np.ndarray | None:
        """Gradient: on leaves after backward; on others with retain_grad() or keep_grads=True."""
        if self._grad is None and self._tape is not None and self._tape.node_grads:
            return self._tape.node_grads.get(self._idx)
        return self._grad

    @grad.setter
    def grad(self, value: np.ndarray | None) -> None:
        self._grad = None if value is None else np.asarray(value)

    @property
    def version(self) -> int:
        """How many times the value was changed in place (by an optimizer step, `load_state_dict`
        or `mark_modified`). Backward refuses a graph whose saved arrays changed since recording."""
        return self._version

    def mark_modified(self) -> "Tensor":
        """Record that `.data` was changed in place (what optimizers do); returns self.

        Write through ``t.data[...] = ...`` and then call this, so that a backward through a
        graph that saved the old values raises instead of silently using the new ones.
        """
        self._version += 1
        return self

    @property
    def name(self) -> str | None:
        return self._name

    @name.setter
    def name(self, value: str | None) -> None:
        self.named(value)

    def named(self, name: str | None) -> "Tensor":
        """Label this tensor (``h``, ``o``, ``L``) for graph views; returns self."""
        if name is not None and not isinstance(name, str):
            raise TypeError(f"named: name must be a str, got {type(name).__name__}")
        self._name = name
        tape = self._tape
        if tape is not None:
            if name is None:
                tape.names.pop(self._idx, None)
            else:
                tape.names[self._idx] = name
        return self

    shape = property(lambda self: self.data.shape, doc="Shape of the value.")
    ndim = property(lambda self: self.data.ndim, doc="Number of dimensions.")
    dtype = property(lambda self: self.data.dtype, doc="numpy dtype of the value.")
    size = property(lambda self: self.data.size, doc="Number of elements.")
    is_leaf = property(lambda self: self._tape is None, doc="True when no recorded op made it.")

    @property
    def op(self) -> str | None:
        """Name of the op that made this tensor (None for leaves)."""
        return None if self._tape is None else self._tape.op_name(self._idx)

    def numpy(self) -> np.ndarray:
        """The value as a numpy array (shared, not copied)."""
        return self.data

    def float(self) -> "Tensor":
        """This tensor as float32 (a recorded `astype`; the gradient is cast back)."""
        return self.astype(np.float32)

    def double(self) -> "Tensor":
        """This tensor as float64 (a recorded `astype`; the gradient is cast back)."""
        return self.astype(np.float64)

    def item(self) -> float | int:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item: only one-element tensors convert to a Python number, "
                             f"got shape {self.shape}")
        return self.data.item()

    def tolist(self) -> Any:
        return self.data.tolist()

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __bool__(self) -> bool:
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.data if dtype is None else self.data.astype(dtype)

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        parts = [f"shape={self.shape}", f"dtype={self.dtype}"]
        if self._name:
            parts.append(f"name={self._name!r}")
        if self._tape is not None:
            parts.append(f"op={self.op!r}")
        if self.requires_grad:
            parts.append("requires_grad=True")
        body = np.array2string(self.data, precision=4, threshold=8, edgeitems=2)
        return f"Tensor({body}, {', '.join(parts)})"

    # -- graph helpers (``backward``, ``detach``, ``astype`` and the operators are installed by
    #    `autograd` and `ops`, which import this module: the imports run one way) --------------
    def retain_grad(self) -> "Tensor":
        """Keep this non-leaf tensor's gradient in `.grad` after backward."""
        if self._tape is None:
            return self
        self._tape.retained[self._idx] = weakref.ref(self)
        return self

    def register_hook(self, fn: Callable[[np.ndarray], np.ndarray | None]) -> Callable:
        """Call ``fn(grad)`` when this tensor's gradient is known; a returned array replaces it."""
        if not callable(fn):
            raise TypeError(f"register_hook: expected a callable, got {type(fn).__name__}")
        if not self.requires_grad:
            raise RuntimeError("register_hook: this tensor does not require grad, so no gradient "
                               "will ever reach the hook")
        if self._tape is not None:
            self._tape.hooks.setdefault(self._idx, []).append(fn)
        else:
            if getattr(self, "_hooks", None) is None:
                self._hooks = []
            self._hooks.append(fn)
        return fn

    def zero_grad(self) -> None:
        self._grad = None


# ------------------------------------------------------------------------------------------------
# apply: the one hot path every op goes through
# ------------------------------------------------------------------------------------------------

def _leaf_index(tape: Tape, t: Tensor) -> int:
    """Node id of a tensor that is not an op output of `tape`: add a leaf node the first time.

    A tensor made by an older, released tape enters as an input through a stand-in that shares
    its data: holding the tensor itself would keep the old tape (and, through it, every tape
    before) alive.
    """
    key = id(t)
    idx = tape.leaves.get(key)
    version = t._version
    if idx is not None:
        ref = tape.foreign.get(idx)
        if ref is None and version == tape.versions.get(idx, 0) or ref is not None and ref() is t:
            return idx
    # a new node: first use, or first use since the leaf was changed in place (the ops before
    # saved the old values; backward checks them against the version recorded here)
    idx = len(tape.ops)
    name = t._name
    leaf = t
    st = current_state()
    if t._tape is not None:  # made on another (released) tape: an input here, with no way back
        kind = "input"
        m = Meta._make(t._tape.meta[t._idx])
        scope, step = m.scope, m.step
        if t.requires_grad:
            tape.external.add(idx)
        tape.foreign[idx] = weakref.ref(t)
        leaf = Tensor(t.data, name=name)
    elif isinstance(t, Parameter):
        kind, scope, step = "param", st.scope, None
    else:
        kind, scope, step = ("const" if name == "<const>" else "input"), st.scope, t._born
        if kind == "const":
            name = None
    tape.ops.append(None)
    tape.inputs.append(())
    tape.saved.append(None)
    tape.need.append(())
    tape.meta.append((t.data.shape, t.data.dtype, kind, scope, step, t.requires_grad))
    if version:  # absent means 0: the common case costs nothing
        tape.versions[idx] = version
    if name is not None:
        tape.names[idx] = name
    tape.leaf[idx] = leaf
    tape.leaves[key] = idx
    if st.source:
        _tp.record_source(tape, idx)
    if st.values and t.data.dtype.kind in "fc":
        tape.value_norms[idx] = float(np.linalg.norm(t.data))
    return idx


def _leaf_id(tape: Tape, t: Tensor) -> int:
    """Node id of `t`, a tensor no op made: its leaf node, reused unless the tape holds foreign
    leaves or `t` changed in place since that node was added (then `_leaf_index` decides)."""
    i = tape.leaves.get(id(t))
    if i is not None and not tape.foreign and t._version == tape.versions.get(i, 0):
        return i
    return _leaf_index(tape, t)


def _inputs(tape: Tape, tensors: tuple) -> tuple:
    """(tape, input ids, need, requires grad) of an op, in general: inputs from other tapes,
    any number of inputs. The tape is None when nothing needs recording."""
    ids = []
    need = []
    track = req = False
    other = None
    for t in tensors:
        tt = t._tape
        if tt is tape:
            ids.append(t._idx)
            track = True
        else:
            if tt is not None:
                if tt.released:
                    other = tt
                else:
                    track = True
            ids.append(-1)
        r = t.requires_grad
        need.append(r)
        if r:
            track = req = True
    if other is not None and max(ids) < 0 and other.owner == tape.owner:
        # every recorded input comes from a tape a backward has swept: keep appending to it, so
        # a second loss of that graph (multi-loss, multi-head) still reaches what that backward
        # did not release; what it released raises when a backward reaches it. Only a tape of
        # this thread / task: another's is never appended to (see tape.current_state)
        tape = other
        ids = [t._idx if t._tape is other else -1 for t in tensors]
        track = True
    if not track:
        return None, None, None, False
    for k, i in enumerate(ids):
        if i < 0:
            ids[k] = _leaf_id(tape, tensors[k])
    return tape, tuple(ids), tuple(need), req  # apply interns `need` once, for every path


def apply(op: Any, tensors: tuple, **static: Any) -> Tensor:
    """Run ``op.forward(*arrays, **static)`` and record it on the current tape.

    This is the hot path of the engine, written out flat on purpose: it runs once per op.
    """
    st = current_state()  # this thread's / task's switches, read once
    try:
        if len(tensors) == 2:
            out, saved = op.forward(tensors[0].data, tensors[1].data, **static)
        elif len(tensors) == 1:
            out, saved = op.forward(tensors[0].data, **static)
        else:
            out, saved = op.forward(*[t.data for t in tensors], **static)
    except (ValueError, IndexError) as e:
        shapes = " and ".join(str(t.shape) for t in tensors)
        raise type(e)(f"{op.name}{_tp.where()}: shapes {shapes}: {e}") from None
    except TypeError as e:
        raise TypeError(f"{op.name}{_tp.where()}: {e}") from None
    if out.__class__ is not np.ndarray:
        out = np.asarray(out)
    if st.anomaly:
        check_forward(op.name, tensors, out)
    res = _new(Tensor)
    res.data = out
    res._grad = res._name = res._tape = None
    res._born = st.step
    res.requires_grad = False
    res._idx = -1
    res._version = 0  # every tensor has one: an untracked output can be a leaf later
    if not st.grad_enabled:
        return res
    home = st.home
    tape = home.tape_ref()
    loop = _running_loop()  # the owner check: a task or thread never records on another's tape
    if (tape is None or tape.released
            or home.owner != (_ident() if loop is None else _tp.owner())):
        tape = _tp.current_tape()
    # the common case first, with no lists: each input an op output of this tape or a tensor no
    # op made (a leaf: its node is looked up, or added the first time)
    a = tensors[0]
    if len(tensors) == 2:
        b = tensors[1]
        ta, tb = a._tape, b._tape
        if (ta is tape or ta is None) and (tb is tape or tb is None):
            ra, rb = a.requires_grad, b.requires_grad
            if ta is None and tb is None and not (ra or rb):
                return res  # constants only: nothing to record
            ids = (a._idx if ta is tape else _leaf_id(tape, a),
                   b._idx if tb is tape else _leaf_id(tape, b))
            need = (ra, rb)
            req = ra or rb
        else:
            tape, ids, need, req = _inputs(tape, tensors)
    elif len(tensors) == 1 and a._tape is tape:
        ids = (a._idx,)
        req = a.requires_grad
        need = (req,)
    else:
        tape, ids, need, req = _inputs(tape, tensors)
    if tape is None:
        return res
    if op.backward is None:
        req = False
    idx = len(tape.ops)
    tape.ops.append(op)
    tape.inputs.append(ids)
    tape.saved.append(saved if req else None)
    shape = out.shape
    # the same few `need` patterns and shapes recur on every step: share one object of each
    tape.need.append(_NEEDS.setdefault(need, need))
    tape.meta.append((_SHAPES.setdefault(shape, shape), out.dtype, "op", st.scope, st.step, req))
    if st.source:
        _tp.record_source(tape, idx)
    if st.values and out.dtype.kind in "fc":
        tape.value_norms[idx] = float(np.linalg.norm(out))
    res.requires_grad = req
    res._tape = tape
    res._idx = idx
    return res


_new = object.__new__
_running_loop, _ident = _tp._running_loop, _tp._ident
# two tables, not one: (True,) == (1,) in Python, so a shared table handed a `need` tuple back as
# the shape (1,) and the export wrote the shape [true]
_NEEDS: dict[tuple, tuple] = {}
_SHAPES: dict[tuple, tuple] = {}


def to_array(data: Any, dtype: Any, who: str, copy: bool = False) -> np.ndarray:
    """`data` as a numpy array of real numbers (float64 for floats unless `dtype` or float32).

    Raises a TypeError / ValueError naming `who` for what cannot be a tensor: None, complex
    numbers, objects and strings, ragged nested lists.
    """
    if isinstance(data, Tensor):
        data = data.data
    if data is None:
        raise TypeError(f"{who}: got None; expected a number, a nested list of numbers or a "
                        f"numpy array")
    try:
        arr = np.array(data, dtype=dtype, copy=True) if copy else np.asarray(data, dtype=dtype)
    except (ValueError, TypeError) as e:
        raise type(e)(f"{who}: cannot make an array of numbers from {type(data).__name__} "
                      f"({e}); expected a number, a rectangular nested list or a numpy array") \
            from None
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(f"{who}: complex values (dtype {arr.dtype}) are not supported; expected "
                        f"real numbers (take .real or abs() first)")
    if kind not in "fiub":
        raise TypeError(f"{who}: cannot make a tensor from {type(data).__name__} (numpy dtype "
                        f"{arr.dtype}); expected numbers (float, int or bool)")
    if dtype is None and kind == "f" and arr.dtype != np.float32 and arr.dtype != DEFAULT_DTYPE:
        arr = arr.astype(DEFAULT_DTYPE)
    return arr


def const(x: Any, like: Tensor | None = None, op: str = "op") -> Tensor:
    """Wrap a Python number or array as a constant of an op; pass Tensors on.

    The dtype rule (PyTorch's): a Python or numpy *scalar* (or 0-d array) is weak, it takes the
    float dtype of the tensor it meets (``float32 * 2.5`` stays float32); an array with
    dimensions is a tensor of its own dtype and promotes as numpy does (float32 with float64
    gives float64).
    """
    if isinstance(x, Tensor):
        return x
    if isinstance(x, _SCALARS) or isinstance(x, np.ndarray):
        if isinstance(x, (str, bytes)):
            raise TypeError(f"{op}{_tp.where()}: cannot combine a Tensor with a "
                            f"{type(x).__name__} ({x!r}); expected a Tensor, a number or an array")
        dtype = None
        if (like is not None and like.data.dtype.kind == "f" and np.ndim(x) == 0
                and np.asarray(x).dtype.kind in "biuf"):
            dtype = like.data.dtype
        t = Tensor(x, dtype=dtype)
        t._name = "<const>"
        return t
    raise TypeError(f"{op}{_tp.where()}: cannot combine a Tensor with {type(x).__name__}; "
                    f"expected a Tensor, a number or a numpy array")


class Parameter(Tensor):
    """A named leaf tensor that requires grad: the weights a model learns.

    The data is copied (as ``torch.nn.Parameter(torch.tensor(a))``): an optimizer step never
    writes into the caller's array. Integer data without a `dtype` becomes float64; an explicit
    non-float `dtype` is refused.

    Examples
    --------
    >>> W = Parameter(np.zeros((3, 3)), name="W")
    """

    __slots__ = ()

    def __init__(self, data: Any, name: str | None = None, dtype: Any = None) -> None:
        arr = to_array(data, dtype, "Parameter", copy=True)
        if arr.dtype.kind != "f":
            if dtype is not None:
                raise TypeError(f"Parameter: dtype must be a floating dtype (parameters take "
                                f"gradients), got {arr.dtype}")
            arr = arr.astype(DEFAULT_DTYPE)
        super().__init__(arr, requires_grad=True, name=name)

    def __repr__(self) -> str:
        return "Parameter" + super().__repr__()[len("Tensor"):]
