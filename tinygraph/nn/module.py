"""Module: named parameters, sub-modules, state_dict, .npz save/load, and the scope of a call.

Flow: a model is a tree of Modules; calling one opens ``tg.scope(module.name)`` around its
``forward``, so every node it records reads ``encoder/cell/matmul`` in the exported graph. The
tree is walked with an explicit stack (no recursion). Shared helpers for checking inputs live
here too, so every module's errors name the module, what was expected and what came.

The dtype boundary: a module whose parameters are float32 (``dtype=np.float32``) casts the float
arrays and tensors it is called with to float32 (a recorded ``astype`` for a tensor, so the
gradient flows back in the caller's dtype); integer ids pass unchanged. This happens once, in
`Module.__call__`, so no module runs in float64 by accident.
"""
from __future__ import annotations

import contextlib
import os
import zipfile
from collections import OrderedDict
from typing import Any, Iterator

import numpy as np

import tinygraph as tg
from tinygraph.tensor import Parameter, Tensor


class Module:
    """Base class of every model piece in `tinygraph.nn`.

    Assigning a `Parameter` or a `Module` as an attribute registers it; a child's scope name is
    the attribute name unless it was given one. Calling the module runs `forward` inside
    ``tg.scope(self.name)``.

    Parameters
    ----------
    name : str, optional
        Scope name of this module (default: the class name in lower case, or the attribute
        name when it is assigned into a parent).

    Examples
    --------
    >>> class Affine(Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.W = Parameter(np.eye(2), name="W")
    ...     def forward(self, x):
    ...         return x @ self.W.T
    >>> [k for k, _ in Affine().named_parameters()]
    ['W']
    """

    def __init__(self, name: str | None = None) -> None:
        object.__setattr__(self, "_params", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_named", name is not None)
        object.__setattr__(self, "name", name or type(self).__name__.lower())

    # -- registration ---------------------------------------------------------------------------
    def __setattr__(self, key: str, value: Any) -> None:
        if "_params" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before assigning "
                               f"attributes")
        self._params.pop(key, None)
        self._modules.pop(key, None)
        if isinstance(value, Parameter):
            self._params[key] = value
        elif isinstance(value, Module):
            self._modules[key] = value
            if not value._named:
                object.__setattr__(value, "name", key)
        object.__setattr__(self, key, value)

    def add_module(self, key: str, module: "Module") -> "Module":
        """Register `module` under `key` (for generated names like ``layer2``); returns it."""
        setattr(self, key, module)
        return module

    def param(self, key: str, data: np.ndarray, name: str | None = None) -> Parameter:
        """Create and register a Parameter named `name` (default `key`) for graph views."""
        dtype = np.asarray(data).dtype
        if dtype.kind != "f":
            raise TypeError(f"{who(self)}: parameter {key} needs a floating dtype (float32 or "
                            f"float64), got {dtype}; pass dtype=np.float32 or np.float64")
        p = Parameter(data, name=name or key)
        setattr(self, key, p)
        return p

    # -- traversal ------------------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """Yield ``(dotted path, module)`` for this module and every descendant, parents first."""
        stack = [(prefix, self)]
        while stack:
            path, mod = stack.pop()
            yield path, mod
            children = [(f"{path}.{k}" if path else k, m) for k, m in mod._modules.items()]
            stack.extend(reversed(children))

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Yield ``(dotted path, Parameter)``, e.g. ``("encoder.W", W)``, each parameter once."""
        seen: set[int] = set()
        for path, mod in self.named_modules(prefix):
            for k, p in mod._params.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{path}.{k}" if path else k), p

    def parameters(self) -> list[Parameter]:
        """All parameters, in registration order."""
        return [p for _, p in self.named_parameters()]

    def num_parameters(self) -> int:
        """Total number of scalar parameters."""
        return int(sum(p.data.size for p in self.parameters()))

    def zero_grad(self) -> None:
        """Clear the gradient of every parameter."""
        for p in self.parameters():
            p.grad = None

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Copies of every parameter's value, keyed by dotted path."""
        return OrderedDict((k, p.data.copy()) for k, p in self.named_parameters())

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copy values from `state` into the parameters.

        Raises
        ------
        KeyError
            With ``strict``, when keys are missing or unexpected (both lists are named).
        ValueError
            When a value's shape differs from the parameter's.
        """
        own = dict(self.named_parameters())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"{type(self).__name__} {self.name!r}: load_state_dict: missing keys "
                           f"{missing}, unexpected keys {unexpected}; expected exactly "
                           f"{list(own)}")
        values = {}
        for k, p in own.items():  # check everything before writing anything
            if k not in state:
                continue
            v = np.asarray(state[k]) if state[k] is not None else None
            if v is None or v.dtype.kind not in "fiub":
                got = "None" if v is None else f"dtype {v.dtype}"
                raise TypeError(f"{who(self)}: load_state_dict: {k} expected real numbers of "
                                f"shape {p.data.shape}, got {got}")
            if v.shape != p.data.shape:
                raise ValueError(f"{who(self)}: load_state_dict: "
                                 f"{k} expected shape {p.data.shape}, got {v.shape}")
            values[k] = v
        for k, v in values.items():
            own[k].data[...] = v
            own[k].mark_modified()

    def save(self, path: str | os.PathLike) -> None:
        """Write the state_dict in ``.npz`` format to exactly `path` (no suffix is added)."""
        with open(path, "wb") as f:
            np.savez(f, **self.state_dict())

    def load(self, path: str | os.PathLike, strict: bool = True) -> "Module":
        """Read a file written by `save` into this module; returns self.

        Raises
        ------
        FileNotFoundError
            When `path` does not exist.
        ValueError
            When the file is empty, truncated or not an ``.npz`` archive (the message names it).
        """
        try:
            with np.load(path, allow_pickle=False) as f:
                state = {k: f[k] for k in f.files}
        except FileNotFoundError:
            raise
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
            raise ValueError(f"{who(self)}: load: {os.fspath(path)!r} is not a complete .npz "
                             f"file written by save() ({type(e).__name__}: {e})") from None
        self.load_state_dict(state, strict=strict)
        return self

    # -- calling --------------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        dtype = self._float_dtype()
        if dtype is not None:
            args = tuple(_cast(a, dtype) for a in args)
            kwargs = {k: _cast(v, dtype) for k, v in kwargs.items()}
        with tg.scope(self.name):
            return self.forward(*args, **kwargs)

    def _float_dtype(self) -> np.dtype | None:
        """The dtype of the first parameter (own ones first), or None for a module without any."""
        for p in self._params.values():
            return p.data.dtype
        for _, mod in self.named_modules():
            for p in mod._params.values():
                return p.data.dtype
        return None

    def forward(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} defines no forward()")

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()})"]
        for path, mod in list(self.named_modules())[1:]:
            depth = path.count(".") + 1
            lines.append("  " * depth + f"({path.split('.')[-1]}): {type(mod).__name__}"
                         f"({mod.extra_repr()})")
        return "\n".join(lines)


def _cast(x: Any, dtype: np.dtype) -> Any:
    """A float array or tensor in `dtype` (the module boundary); anything else as it is."""
    if isinstance(x, Tensor):
        return x.astype(dtype) if x.data.dtype.kind == "f" and x.data.dtype != dtype else x
    if isinstance(x, np.ndarray) and x.dtype.kind == "f" and x.dtype != dtype:
        return x.astype(dtype)
    return x


# ------------------------------------------------------------------------------------------------
# shared weights in a recurrent loop: one transpose before the loop, or one copy W(t) per step
# ------------------------------------------------------------------------------------------------

_PER_STEP = [False]


@contextlib.contextmanager
def per_step_copies() -> Iterator[None]:
    """Record the recurrent modules' shared weights as one copy W(t) per step.

    By default a loop transposes each shared weight once, before its first step (fewer recorded
    ops: the fast path). Inside this context every step reads the weight itself (``W.T`` at step
    t), as in the book's unfolded graph, so `step_grads` can split its gradient by step.

    Examples
    --------
    >>> with per_step_copies():                      # doctest: +SKIP
    ...     loss = sequence_loss(rnn(x).o, y)
    >>> loss.backward(keep_grads=True)               # doctest: +SKIP
    >>> step_grads(rnn.cell.W, loss)[3]              # grad W(3)  # doctest: +SKIP
    """
    old = _PER_STEP[0]
    _PER_STEP[0] = True
    try:
        yield
    finally:
        _PER_STEP[0] = old


class Transposed:
    """W^T for every step of a loop: taken now (step None), or at each call under
    `per_step_copies` (then recorded in the calling step)."""

    __slots__ = ("p", "once")

    def __init__(self, p: Tensor) -> None:
        self.p = p
        self.once = None if _PER_STEP[0] else p.T

    def __call__(self) -> Tensor:
        return self.p.T if self.once is None else self.once


# ------------------------------------------------------------------------------------------------
# initialisation and input checks shared by the modules
# ------------------------------------------------------------------------------------------------

def init_uniform(rng: np.random.Generator, shape: tuple, fan_in: int,
                 dtype: Any = np.float64) -> np.ndarray:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)), the usual RNN initialisation (as PyTorch's)."""
    k = 1.0 / np.sqrt(max(fan_in, 1))
    return rng.uniform(-k, k, shape).astype(dtype)


def who(mod: Module) -> str:
    """How errors name a module: ``RNN 'encoder'``."""
    return f"{type(mod).__name__} {mod.name!r}"


def as_float_seq(mod: Module, x: Any, size: int, what: str = "input x") -> Tensor:
    """Check a float batch of sequences (B, T, size) and return it as a Tensor."""
    t = x if isinstance(x, Tensor) else tg.tensor(np.asarray(x))
    if t.ndim != 3 or t.shape[2] != size or t.dtype.kind != "f":
        raise ValueError(f"{who(mod)}: expected {what} of shape (B, T, {size}) with a float "
                         f"dtype, or int ids of shape (B, T); got shape {t.shape} dtype {t.dtype}")
    if t.shape[1] == 0:
        raise ValueError(f"{who(mod)}: {what} has length T = 0; expected at least one step")
    return t


def check_ids(mod: Module, ids: Any, vocab: int, ndim: int = 2, what: str = "ids") -> np.ndarray:
    """Check an integer id array of `ndim` dims with values in [0, vocab); return it."""
    a = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
    shape = "(B, T)" if ndim == 2 else "(B,)" if ndim == 1 else f"{ndim}-D"
    if a.ndim != ndim or a.dtype.kind not in "iu":
        raise ValueError(f"{who(mod)}: expected {what} as ints of shape {shape}, got shape "
                         f"{a.shape} dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= vocab):
        bad = a[(a < 0) | (a >= vocab)].ravel()[0]
        raise ValueError(f"{who(mod)}: {what} must lie in [0, {vocab}), got {bad}")
    return a


def is_ids(x: Any) -> bool:
    """True for integer arrays/tensors (token ids), False for float inputs."""
    a = x.data if isinstance(x, Tensor) else x
    return np.asarray(a).dtype.kind in "iu"


def initial_state(mod: Module, h: Any, batch: int, size: int, dtype: Any, name: str = "h",
                  step: int = 0, what: str = "h0") -> Tensor:
    """The initial state h(0) (B, size): zeros when `h` is None, else `h` checked.

    A new tensor is made inside ``tg.step(step)`` and named `name`, so views show h(0); a Tensor
    passed in (a state carried from an earlier chunk) is used as it is.
    """
    if isinstance(h, Tensor):
        t = h
    else:
        with tg.step(step):
            t = (tg.zeros(batch, size, dtype=dtype) if h is None
                 else tg.tensor(np.asarray(h, dtype=dtype))).named(name)
    if t.shape != (batch, size):
        raise ValueError(f"{who(mod)}: expected {what} of shape ({batch}, {size}), got {t.shape}")
    return t
