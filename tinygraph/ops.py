"""The public op functions (``tg.tanh(x)``) and the Tensor methods and operators built on them.

Flow: user code -> these wrappers -> `tensor.apply(op, inputs)` -> the tape. The
primitives themselves (forward + vjp) live in `ops_math`, `ops_shape` and `ops_nn`.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import ops_math as M
from . import ops_nn as N
from . import ops_shape as S
from .tape import where as _where
from .tensor import Tensor, apply, as_tensor


def _t(x: Any, op: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (list, tuple)):  # class ids, targets: a plain list is fine
        x = np.asarray(x)
    return as_tensor(x, op=op)


def _binary(op: Any, a: Any, b: Any) -> Tensor:
    if isinstance(a, Tensor):
        if not isinstance(b, Tensor):
            b = as_tensor(b, a, op.name)
    else:
        a = as_tensor(a, b, op.name)
    return apply(op, (a, b))


def add(a: Any, b: Any) -> Tensor:
    """a + b, broadcasting."""
    return _binary(M.Add, a, b)


def sub(a: Any, b: Any) -> Tensor:
    """a - b, broadcasting."""
    return _binary(M.Sub, a, b)


def mul(a: Any, b: Any) -> Tensor:
    """a * b, broadcasting."""
    return _binary(M.Mul, a, b)


def div(a: Any, b: Any) -> Tensor:
    """a / b, broadcasting."""
    return _binary(M.Div, a, b)


def matmul(a: Any, b: Any) -> Tensor:
    """a @ b: 1-D, 2-D and batched, as numpy.matmul."""
    if isinstance(a, Tensor) and isinstance(b, Tensor) and (a.ndim == 0 or b.ndim == 0):
        raise ValueError(f"matmul{_where()}: shapes {a.shape} and {b.shape}: matmul needs at "
                         f"least 1-D operands; use * for scalars")
    return _binary(M.Matmul, a, b)


def neg(a: Tensor) -> Tensor:
    """-a."""
    return apply(M.Neg, (_t(a, "neg"),))


def pow(a: Tensor, exponent: float) -> Tensor:
    """a ** exponent for a Python number `exponent`."""
    if isinstance(exponent, Tensor) or not np.isscalar(exponent):
        raise TypeError(f"pow{_where()}: the exponent must be a Python number, got "
                        f"{type(exponent).__name__}")
    return apply(M.Pow, (_t(a, "pow"),), exponent=exponent)


def _unary(op: Any):
    def fn(a: Tensor) -> Tensor:
        return apply(op, (a if isinstance(a, Tensor) else _t(a, op.name),))
    fn.__name__ = op.name
    fn.__doc__ = f"Elementwise {op.name}."
    return fn


exp = _unary(M.Exp)
log = _unary(M.Log)
tanh = _unary(M.Tanh)
sigmoid = _unary(M.Sigmoid)
relu = _unary(M.Relu)


def sum(a: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Sum over `axis` (all axes when None)."""
    return apply(M.Sum, (_t(a, "sum"),), axis=axis, keepdims=keepdims)


def mean(a: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Mean over `axis` (all axes when None)."""
    return apply(M.Mean, (_t(a, "mean"),), axis=axis, keepdims=keepdims)


def max(a: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Maximum over `axis`; ties share the gradient."""
    return apply(M.Max, (_t(a, "max"),), axis=axis, keepdims=keepdims)


def reshape(a: Tensor, *shape: Any) -> Tensor:
    """The same values in a new shape (``reshape(x, 2, 3)`` or ``reshape(x, (2, 3))``)."""
    shp = tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], int) else shape
    return apply(S.Reshape, (_t(a, "reshape"),), shape=shp)


def transpose(a: Tensor, axes: Sequence[int] | None = None) -> Tensor:
    """Permute axes (reverse them when `axes` is None)."""
    return apply(S.Transpose, (_t(a, "transpose"),),
                 axes=None if axes is None else tuple(axes))


def _index(index: Any) -> Any:
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return np.asarray(index)
    return index


def getitem(a: Tensor, index: Any) -> Tensor:
    """a[index]: slices, ints and integer arrays (scatter-add vjp)."""
    return apply(S.Getitem, (a,), index=_index(index))


def concat(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    ts = _seq(tensors, "concat")
    return apply(S.Concat, ts, axis=axis)


def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors along a new axis."""
    ts = _seq(tensors, "stack")
    return apply(S.Stack, ts, axis=axis)


def _seq(tensors: Sequence[Any], op: str) -> tuple:
    if isinstance(tensors, Tensor) or not hasattr(tensors, "__len__") or len(tensors) == 0:
        raise ValueError(f"{op}{_where()}: expected a non-empty list of tensors")
    like = next((t for t in tensors if isinstance(t, Tensor)), None)
    return tuple(as_tensor(t, like, op) for t in tensors)


def split(a: Tensor, split_size_or_sections: int | Sequence[int], axis: int = 0) -> list[Tensor]:
    """Split into pieces of `split_size` (int) or of the given sizes (list), as torch.split."""
    if not -a.ndim <= axis < a.ndim:
        raise ValueError(f"split{_where()}: axis {axis} is out of range for a tensor of shape "
                         f"{a.shape}")
    n = a.shape[axis]
    if isinstance(split_size_or_sections, (int, np.integer)):
        size = int(split_size_or_sections)
        if size <= 0:
            raise ValueError(f"split{_where()}: split size must be positive, got {size}")
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if builtin_sum(sizes) != n:
            raise ValueError(f"split{_where()}: sections {sizes} sum to {builtin_sum(sizes)}, "
                             f"but axis {axis} of shape {a.shape} has {n}")
    out, start = [], 0
    for s in sizes:
        out.append(apply(S.SplitPart, (a,), start=start, stop=start + s, axis=axis))
        start += s
    return out


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """Pick from `a` where `cond` holds, else from `b` (cond carries no gradient)."""
    c = np.asarray(cond.data if isinstance(cond, Tensor) else cond, dtype=bool)
    like = a if isinstance(a, Tensor) else b
    return apply(S.Where, (as_tensor(a, like, "where"), as_tensor(b, like, "where")),
                 cond=c)


def identity(a: Tensor) -> Tensor:
    """The same values as a new recorded node (to name one value twice, e.g. C = h(n))."""
    return apply(S.Identity, (a,))


def detach(a: Tensor) -> Tensor:
    """A tensor with the same values from which no gradient flows back.

    Inside a live graph the cut is recorded (a ``detach`` node, drawn dashed by viz); a tensor
    of a released graph (after backward) becomes a plain leaf, so old graphs can be freed.
    """
    tape = a._tape
    if tape is None or tape.released:
        return Tensor(a.data, name=a.name)
    return apply(S.Detach, (a,))


def argmax(a: Tensor, axis: int = -1) -> Tensor:
    """Index of the maximum along `axis` (recorded, no gradient)."""
    return apply(S.Argmax, (a,), axis=axis)


def one_hot(ids: Any, num_classes: int, dtype: Any = np.float64) -> Tensor:
    """Rows of the identity picked by integer `ids` (recorded, no gradient)."""
    return apply(S.OneHot, (_t(ids, "one_hot"),), num_classes=num_classes,
                 dtype=dtype)


def softmax(a: Tensor, axis: int = -1) -> Tensor:
    """exp(a) / sum(exp(a)) along `axis`, computed stably."""
    return apply(N.Softmax, (_t(a, "softmax"),), axis=axis)


def log_softmax(a: Tensor, axis: int = -1) -> Tensor:
    """log(softmax(a)) along `axis`, computed stably."""
    return apply(N.LogSoftmax, (_t(a, "log_softmax"),), axis=axis)


def cross_entropy(logits: Tensor, targets: Any, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy of logits (..., K) against integer targets (...)."""
    return apply(N.CrossEntropy, (logits, _t(targets, "cross_entropy")),
                 reduction=reduction)


def nll_loss(logp: Tensor, targets: Any, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood: -logp[..., target] for log-probabilities and integer targets."""
    return apply(N.NllLoss, (logp, _t(targets, "nll_loss")), reduction=reduction)


def mse_loss(pred: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean (or summed) squared error."""
    return apply(N.MseLoss, (pred, as_tensor(target, pred, "mse_loss")),
                 reduction=reduction)


def embedding(weight: Tensor, ids: Any) -> Tensor:
    """Rows of `weight` (V, D) picked by integer `ids` (...), giving (..., D)."""
    return apply(N.Embedding, (weight, _t(ids, "embedding")))


import builtins as _builtins  # noqa: E402  (sum/max above shadow the builtins in this module)

builtin_sum = _builtins.sum


# ------------------------------------------------------------------------------------------------
# Tensor methods and Python operators
# ------------------------------------------------------------------------------------------------

def _rpow(a: Tensor, base: Any) -> Tensor:
    """base ** a for a positive number `base`: exp(a log(base))."""
    if not np.isscalar(base) or isinstance(base, (str, bytes)) or not base > 0:
        raise TypeError(f"pow{_where()}: number ** Tensor needs a positive number as the base, "
                        f"got {base!r}")
    return exp(a * float(np.log(base)))


def _install() -> None:
    T = Tensor
    T.__add__ = lambda a, b: _binary(M.Add, a, b)
    T.__radd__ = lambda a, b: _binary(M.Add, b, a)
    T.__sub__ = lambda a, b: _binary(M.Sub, a, b)
    T.__rsub__ = lambda a, b: _binary(M.Sub, b, a)
    T.__mul__ = lambda a, b: _binary(M.Mul, a, b)
    T.__rmul__ = lambda a, b: _binary(M.Mul, b, a)
    T.__truediv__ = lambda a, b: _binary(M.Div, a, b)
    T.__rtruediv__ = lambda a, b: _binary(M.Div, b, a)
    T.__matmul__ = lambda a, b: matmul(a, b)
    T.__rmatmul__ = lambda a, b: matmul(b, a)
    T.__pow__ = lambda a, p: pow(a, p)
    T.__rpow__ = _rpow
    T.__neg__ = lambda a: apply(M.Neg, (a,))
    T.__getitem__ = getitem
    for fn in (exp, log, tanh, sigmoid, relu, sum, mean, max, reshape, transpose, softmax,
               log_softmax, argmax, split):
        setattr(T, fn.__name__, fn)
    T.T = property(lambda a: transpose(a), doc="The transpose (axes reversed).")
    # comparisons give plain boolean arrays: masks for `where`, never recorded
    T.__lt__ = lambda a, b: a.data < (b.data if isinstance(b, Tensor) else b)
    T.__le__ = lambda a, b: a.data <= (b.data if isinstance(b, Tensor) else b)
    T.__gt__ = lambda a, b: a.data > (b.data if isinstance(b, Tensor) else b)
    T.__ge__ = lambda a, b: a.data >= (b.data if isinstance(b, Tensor) else b)


_install()
