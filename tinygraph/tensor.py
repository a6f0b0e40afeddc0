"""Tensor: a numpy array plus what the tape needs to know about it.

Flow: model code calls ops on Tensors -> `apply` runs the op's forward and appends a Node to the
current tape -> backward sweeps that tape. This module holds the Tensor class, `apply` (the one
hot path every op goes through) and the creation functions.
"""
from __future__ import annotations

import numbers
import weakref
from typing import Any, Callable, Iterable

import numpy as np

from . import tape as _tp
from .tape import Tape, current_state

DEFAULT_DTYPE = np.float64
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
                 "__weakref__")
    __array_priority__ = 1000  # so ndarray + Tensor calls Tensor.__radd__

    def __init__(self, data: Any, requires_grad: bool = False, name: str | None = None,
                 dtype: Any = None) -> None:
        if isinstance(data, Tensor):
            data = data.data
        arr = np.asarray(data, dtype=dtype)
        if dtype is None and arr.dtype.kind in "fc" and arr.dtype != np.float32:
            arr = arr.astype(DEFAULT_DTYPE, copy=False)
        elif dtype is None and arr.dtype.kind not in "fiub":
            raise TypeError(f"tensor: cannot make a tensor from {type(data).__name__} "
                            f"(numpy dtype {arr.dtype}); expected numbers")
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

    # -- graph helpers ------------------------------------------------------------------------------
    def detach(self) -> "Tensor":
        """The same values, cut from the graph: no gradient flows back through it.

        Inside a live graph the cut is recorded (a ``detach`` node) so views can draw it dashed;
        a tensor from a graph that was already backpropagated becomes a plain leaf.
        """
        from .ops import detach
        return detach(self)

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

    def backward(self, grad: Any = None, retain_graph: bool = False,
                 keep_grads: bool = False) -> None:
        """Backpropagate from this tensor: one reverse sweep over its tape.

        Parameters
        ----------
        grad : array_like, optional
            dL/d(self); required unless self holds one element.
        retain_graph : bool
            Keep the saved buffers so backward can run through this graph again.
        keep_grads : bool
            Keep every node's gradient (``t.grad`` on any tensor) and the norm of every edge's
            gradient contribution, for `trace` and gradient-flow views.
        """
        from .autograd import backward
        backward(self, grad, retain_graph=retain_graph, keep_grads=keep_grads)

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
    if idx is not None:
        ref = tape.foreign.get(idx)
        if ref is None or ref() is t:
            return idx
    idx = len(tape.ops)
    name = t._name
    leaf = t
    st = current_state()
    if t._tape is not None:  # made on another (released) tape: an input here, with no way back
        kind = "input"
        _, _, _, scope, step, _ = t._tape.meta[t._idx]
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
    if name is not None:
        tape.names[idx] = name
    tape.leaf[idx] = leaf
    tape.leaves[key] = idx
    if st.source:
        _tp.record_source(tape, idx)
    if st.values and t.data.dtype.kind in "fc":
        tape.value_norms[idx] = float(np.linalg.norm(t.data))
    return idx


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
        from .debug import check_forward
        check_forward(op.name, tensors, out)
    res = _new(Tensor)
    res.data = out
    res._grad = res._name = res._tape = None
    res._born = st.step
    res.requires_grad = False
    res._idx = -1
    if not st.grad_enabled:
        return res
    home = st.home
    tape = home.tape_ref()
    loop = _running_loop()  # the owner check: a task or thread never records on another's tape
    if (tape is None or tape.released
            or home.owner != (_ident() if loop is None else _tp.owner())):
        tape = _tp.current_tape()
    ids = []
    need = []
    track = req = False
    for t in tensors:
        tt = t._tape
        if tt is tape:
            ids.append(t._idx)
            track = True
        else:
            if tt is not None and not tt.released:
                track = True
            ids.append(-1)
        r = t.requires_grad
        need.append(r)
        if r:
            track = req = True
    if not track:
        return res
    leaves = tape.leaves
    for k, i in enumerate(ids):
        if i < 0:
            t = tensors[k]
            i = leaves.get(id(t))
            ids[k] = i if i is not None and not tape.foreign else _leaf_index(tape, t)
    if op.backward is None:
        req = False
    idx = len(tape.ops)
    tape.ops.append(op)
    tape.inputs.append(tuple(ids))
    tape.saved.append(saved if req else None)
    need = tuple(need)
    shape = out.shape
    # the same few `need` patterns and shapes recur on every step: share one object of each
    tape.need.append(_INTERN.setdefault(need, need))
    tape.meta.append((_INTERN.setdefault(shape, shape), out.dtype, "op", st.scope, st.step, req))
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
_INTERN: dict[tuple, tuple] = {}


def as_tensor(x: Any, like: Tensor | None = None, op: str = "op") -> Tensor:
    """Wrap a Python number or array as a constant (in `like`'s float dtype); pass Tensors on."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, _SCALARS) or isinstance(x, np.ndarray):
        dtype = None
        if like is not None and like.data.dtype.kind == "f" and np.asarray(x).dtype.kind in "biuf":
            dtype = like.data.dtype
        t = Tensor(x, dtype=dtype)
        t._name = "<const>"
        return t
    raise TypeError(f"{op}{_tp.where()}: cannot combine a Tensor with {type(x).__name__}; "
                    f"expected a Tensor, a number or a numpy array")


class Parameter(Tensor):
    """A named leaf tensor that requires grad: the weights a model learns.

    Examples
    --------
    >>> W = Parameter(np.zeros((3, 3)), name="W")
    """

    __slots__ = ()

    def __init__(self, data: Any, name: str | None = None, dtype: Any = None) -> None:
        arr = np.asarray(data.data if isinstance(data, Tensor) else data, dtype=dtype)
        if arr.dtype.kind != "f":
            arr = arr.astype(DEFAULT_DTYPE)
        super().__init__(arr, requires_grad=True, name=name)

    def __repr__(self) -> str:
        return "Parameter" + super().__repr__()[len("Tensor"):]


# ------------------------------------------------------------------------------------------------
# creation
# ------------------------------------------------------------------------------------------------

def tensor(data: Any, requires_grad: bool = False, name: str | None = None,
           dtype: Any = None) -> Tensor:
    """Make a tensor from a number, a (nested) list or a numpy array (float64 by default)."""
    return Tensor(data, requires_grad=requires_grad, name=name, dtype=dtype)


def _shape(shape: Iterable[int] | int) -> tuple:
    shp = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if any(not isinstance(s, (int, np.integer)) or s < 0 for s in shp):
        raise ValueError(f"shape must be non-negative ints, got {shape!r}")
    return shp


def zeros(*shape: Any, dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False,
          name: str | None = None) -> Tensor:
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``."""
    shp = _shape(shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape)
    return Tensor(np.zeros(shp, dtype=dtype), requires_grad=requires_grad, name=name)


def ones(*shape: Any, dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False,
         name: str | None = None) -> Tensor:
    """A tensor of ones: ``ones(2, 3)`` or ``ones((2, 3))``."""
    shp = _shape(shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape)
    return Tensor(np.ones(shp, dtype=dtype), requires_grad=requires_grad, name=name)


def full(shape: Any, value: float, dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False,
         name: str | None = None) -> Tensor:
    """A tensor filled with `value`."""
    return Tensor(np.full(_shape(shape), value, dtype=dtype), requires_grad=requires_grad,
                  name=name)


def rng_from(rng: Any) -> np.random.Generator:
    """A numpy Generator from a seed, a Generator or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be an int seed, a numpy Generator or None, got {type(rng).__name__}")


def randn(*shape: Any, rng: Any = None, dtype: Any = DEFAULT_DTYPE, scale: float = 1.0,
          requires_grad: bool = False, name: str | None = None) -> Tensor:
    """Standard normal samples times `scale`, from a seed or Generator `rng`."""
    shp = _shape(shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape)
    data = rng_from(rng).standard_normal(shp) * scale
    return Tensor(data.astype(dtype), requires_grad=requires_grad, name=name)


def uniform(shape: Any, low: float = 0.0, high: float = 1.0, rng: Any = None,
            dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False,
            name: str | None = None) -> Tensor:
    """Uniform samples in [low, high), from a seed or Generator `rng`."""
    data = rng_from(rng).uniform(low, high, _shape(shape))
    return Tensor(data.astype(dtype), requires_grad=requires_grad, name=name)
