"""How the PyTorch adapter reads a torch call, and recomputes one op for its gradients.

Flow: tinygraph.adapters.torch (its TorchFunctionMode sees every call) -> **torch_calls**:
the call's name, its tensors (to become the node's inputs), a replay function that recomputes
the node's value from its inputs' values, and the vector-Jacobian product of one op.
Imported by tinygraph.adapters.torch after it has checked that torch is installed.
"""
from __future__ import annotations

import os
import re
import sys
from typing import Any, Callable

import torch

from .. import tape as _tape

#: calls that never make a node (queries, printing, bookkeeping)
PASS = frozenset({
    "dim", "size", "numel", "item", "tolist", "numpy", "stride", "data_ptr", "is_contiguous",
    "__repr__", "__str__", "__format__", "__bool__", "__len__", "__iter__", "__hash__",
    "__reduce_ex__", "__deepcopy__", "register_hook", "retain_grad", "requires_grad_",
    "_set_grad_enabled", "is_floating_point", "element_size", "nelement", "storage_offset",
    "untyped_storage", "__array__", "__index__", "__int__", "__float__", "__contains__",
})
#: property reads that are ops
GETTERS = {"get:T": "transpose", "get:mT": "transpose", "get:H": "transpose",
           "get:mH": "transpose", "get:real": "real", "get:imag": "imag"}
#: torch names -> registry-style names (tinygraph's ops where they exist)
OP_NAMES = {
    "__add__": "add", "__radd__": "add", "__iadd__": "add", "add_": "add",
    "__sub__": "sub", "__isub__": "sub", "sub_": "sub", "__rsub__": "rsub",
    "__mul__": "mul", "__rmul__": "mul", "__imul__": "mul", "mul_": "mul",
    "__truediv__": "div", "__itruediv__": "div", "div_": "div", "__rtruediv__": "rdiv",
    "true_divide": "div", "__matmul__": "matmul", "__rmatmul__": "matmul", "mm": "matmul",
    "bmm": "matmul", "__neg__": "neg", "negative": "neg", "__pow__": "pow", "__rpow__": "rpow",
    "__getitem__": "getitem", "__setitem__": "setitem", "select": "getitem", "t": "transpose",
    "permute": "transpose", "cat": "concat", "concatenate": "concat", "chunk": "split",
    "unbind": "split", "tanh_": "tanh", "sigmoid_": "sigmoid", "relu_": "relu",
}
RANDOM = re.compile(r"dropout|rrelu|bernoulli|multinomial|^rand|normal")
INPLACE_DUNDER = frozenset({"__iadd__", "__isub__", "__imul__", "__itruediv__", "__setitem__",
                             "__ipow__", "__iand__", "__ior__"})
#: fused single-step cells, and fused whole-sequence modules
CELLS = {"rnn_tanh_cell": "tanh", "rnn_relu_cell": "relu", "lstm_cell": "lstm",
          "gru_cell": "gru"}
FUSED = {"rnn_tanh": "tanh", "rnn_relu": "relu", "lstm": "lstm", "gru": "gru"}
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))
_HERE = os.path.dirname(os.path.abspath(__file__))  # the adapter's own files
_CTX = os.path.abspath(str(sys.modules["contextlib"].__file__))


def func_name(func: Any) -> str:
    name = getattr(func, "__name__", None)
    if name == "__get__":  # a property read such as x.T: name it by the property
        return "get:" + str(getattr(getattr(func, "__self__", None), "__name__", "?"))
    return name or type(func).__name__


def is_inplace(name: str) -> bool:
    return name in INPLACE_DUNDER or (name.endswith("_") and not name.startswith("_"))


def user_line() -> tuple[str, str | None] | None:
    """(`src`, `code`) of the first frame outside torch and this adapter (the engine's form)."""
    frame: Any = sys._getframe(2)
    while frame is not None:
        fname = os.path.abspath(frame.f_code.co_filename)
        if not (fname.startswith(_TORCH_DIR) or os.path.dirname(fname) == _HERE
                or fname == _CTX
                or fname.startswith("<frozen")):
            return _tape.source_line(fname, frame.f_lineno)
        frame = frame.f_back
    return None


class _Slot:
    __slots__ = ("i",)

    def __init__(self, i: int) -> None:
        self.i = i


def split(args: tuple, kwargs: dict) -> tuple[tuple, dict, list]:
    """(args, kwargs) with every tensor (also inside a list or tuple) replaced by a slot, and
    the tensors in argument order. Two levels deep: enough for torch.cat and the fused RNNs."""
    tensors: list = []

    def one(a: Any) -> Any:
        if isinstance(a, torch.Tensor):
            tensors.append(a)
            return _Slot(len(tensors) - 1)
        if isinstance(a, (list, tuple)) and any(isinstance(x, (torch.Tensor, list, tuple))
                                                for x in a):
            inner: list[Any] = []
            for x in a:
                if isinstance(x, torch.Tensor):
                    tensors.append(x)
                    inner.append(_Slot(len(tensors) - 1))
                elif isinstance(x, (list, tuple)):
                    row = []
                    for y in x:
                        if isinstance(y, torch.Tensor):
                            tensors.append(y)
                            y = _Slot(len(tensors) - 1)
                        row.append(y)
                    inner.append(type(x)(row))
                else:
                    inner.append(x)
            return type(a)(inner) if type(a) in (list, tuple) else list(inner)
        return a

    targs = tuple(one(a) for a in args)
    tkw = {k: one(v) for k, v in kwargs.items()}
    return targs, tkw, tensors


def fill(template: tuple, tkw: dict, vals: list) -> tuple[tuple, dict]:
    def one(a: Any) -> Any:
        if isinstance(a, _Slot):
            return vals[a.i]
        if isinstance(a, (list, tuple)) and any(isinstance(x, (_Slot, list, tuple)) for x in a):
            inner = []
            for x in a:
                if isinstance(x, _Slot):
                    x = vals[x.i]
                elif isinstance(x, (list, tuple)):
                    x = type(x)(vals[y.i] if isinstance(y, _Slot) else y for y in x)
                inner.append(x)
            return type(a)(inner)
        return a

    return tuple(one(a) for a in template), {k: one(v) for k, v in tkw.items()}


def replay(func: Callable, template: tuple, tkw: dict, k: int | None, inplace: bool,
           rng: Any) -> Callable:
    """fn(*input values) -> this node's value, recomputed by the same torch call (for the
    vector-Jacobian product of the op alone)."""
    def fn(*args: Any) -> Any:
        vals = list(args)
        if inplace:  # never write into the recorded inputs: replay on a copy
            vals[0] = vals[0].clone()
        a, kw = fill(template, tkw, vals)
        if rng is not None:  # the same random draw (dropout mask) as the recorded call
            with torch.random.fork_rng(devices=[]):
                torch.set_rng_state(rng)
                out = func(*a, **kw)
        else:
            out = func(*a, **kw)
        if inplace:
            return vals[0]
        return out if k is None else out[k]
    return fn


def dtype_name(t: Any) -> str:
    return str(t.dtype).replace("torch.", "")


def vjp(fn: Callable, vals: list, need: list, g: Any) -> list:
    """The gradient op `fn` sends to each input for output gradient `g` (None: none)."""
    ins = [v.detach().requires_grad_(True) if want and (v.is_floating_point() or v.is_complex())
           else v.detach() for v, want in zip(vals, need)]
    with torch.enable_grad():
        out = fn(*ins)
    wanted = [a for a in ins if a.requires_grad]
    if not isinstance(out, torch.Tensor) or not out.requires_grad or not wanted:
        return [None] * len(ins)
    got = iter(torch.autograd.grad(out, wanted, g, allow_unused=True))
    return [next(got) if a.requires_grad else None for a in ins]


def norm(t: Any) -> float | None:
    if t is None or not isinstance(t, torch.Tensor) or not (t.is_floating_point()
                                                              or t.is_complex()):
        return None
    return float(torch.linalg.vector_norm(t.detach().double()))
