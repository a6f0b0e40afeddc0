"""The public op functions (``tg.tanh(x)``) and the Tensor methods and operators built on them.

Flow: user code -> these wrappers -> `tensor.apply(op, inputs)` -> the tape. The
primitives themselves (forward + vjp) live in `ops_math`, `ops_shape` and `ops_nn`.

The op table is the one list of ops: every entry of `OPS` has a function of the same name here,
and `__all__` (which `tinygraph` re-exports) is built from the table, so a wrapper that is
missing fails at import. Comparisons (``== != < <= > >=``) are elementwise and give bool
tensors that are not recorded (they carry no gradient); tensors stay hashable by identity.
"""
from __future__ import annotations

import numbers
import operator
from typing import Any, Sequence

import numpy as np

from . import ops_math as M
from . import ops_nn as N
from . import ops_shape as S
from .registry import OPS
from .tape import where as _where
from .tensor import Tensor, apply, const


def _t(x: Any, op: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (list, tuple)):  # class ids, targets: a plain list is fine
        x = np.asarray(x)
    return const(x, op=op)


def _binary(op: Any, a: Any, b: Any) -> Tensor:
    if isinstance(a, Tensor):
        if not isinstance(b, Tensor):
            b = const(b, a, op.name)
    else:
        a = const(a, b, op.name)
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
    """a ** exponent for a real number `exponent` (``x ** 0`` has gradient 0, also at 0)."""
    if not isinstance(exponent, numbers.Real):
        raise TypeError(f"pow{_where()}: the exponent must be a real number (int or float), got "
                        f"{type(exponent).__name__} {exponent!r}")
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
abs = _unary(M.Abs)
sqrt = _unary(M.Sqrt)
log1p = _unary(M.Log1p)


def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise maximum, broadcasting; ties share the gradient (as PyTorch)."""
    return _binary(M.Maximum, a, b)


def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise minimum, broadcasting; ties share the gradient (as PyTorch)."""
    return _binary(M.Minimum, a, b)


def clamp(a: Any, min: float | None = None, max: float | None = None) -> Tensor:
    """Clip to [min, max] (either bound may be None); gradient 1 where min <= a <= max."""
    for what, v in (("min", min), ("max", max)):
        if v is not None and not isinstance(v, numbers.Real):
            raise TypeError(f"clamp{_where()}: {what} must be a real number or None, got "
                            f"{type(v).__name__}")
    if min is None and max is None:
        raise ValueError(f"clamp{_where()}: at least one of min and max must be given")
    return apply(M.Clamp, (_t(a, "clamp"),), min=min, max=max)


def sum(a: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Sum over `axis` (all axes when None)."""
    return apply(M.Sum, (_t(a, "sum"),), axis=axis, keepdims=keepdims)


def mean(a: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Mean over `axis` (all axes when None)."""
    return apply(M.Mean, (_t(a, "mean"),), axis=axis, keepdims=keepdims)


def max(a: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Maximum over `axis`; ties share the gradient."""
    return apply(M.Max, (_t(a, "max"),), axis=axis, keepdims=keepdims)


def min(a: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Minimum over `axis`; ties share the gradient."""
    return apply(M.Min, (_t(a, "min"),), axis=axis, keepdims=keepdims)


def reshape(a: Tensor, *shape: Any) -> Tensor:
    """The same values in a new shape (``reshape(x, 2, 3)`` or ``reshape(x, (2, 3))``)."""
    shp = tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], int) else shape
    return apply(S.Reshape, (_t(a, "reshape"),), shape=shp)


def transpose(a: Tensor, axes: Sequence[int] | None = None) -> Tensor:
    """Permute axes (reverse them when `axes` is None)."""
    return apply(S.Transpose, (_t(a, "transpose"),),
                 axes=None if axes is None else tuple(axes))


def unsqueeze(a: Tensor, axis: int) -> Tensor:
    """A new axis of size 1 at `axis`."""
    return apply(S.Unsqueeze, (_t(a, "unsqueeze"),), axis=int(axis))


def squeeze(a: Tensor, axis: Any = None) -> Tensor:
    """Drop axes of size 1 (all when `axis` is None; an `axis` of another size is kept)."""
    return apply(S.Squeeze, (_t(a, "squeeze"),), axis=axis)


def astype(a: Tensor, dtype: Any) -> Tensor:
    """The values in `dtype`. Between float dtypes the cast is recorded and the gradient is cast
    back; a cast to an integer or bool dtype is cut from the graph (no gradient), as in PyTorch."""
    a = _t(a, "astype")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"astype{_where()}: {dtype!r} is not a numpy dtype") from None
    if dt.kind not in "fiub":
        raise TypeError(f"astype{_where()}: expected a float, int or bool dtype, got {dt}")
    if dt.kind != "f":
        a = detach(a)
    return apply(S.Astype, (a,), dtype=dt)


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
    return tuple(const(t, like, op) for t in tensors)


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
        if any(s < 0 for s in sizes):
            raise ValueError(f"split{_where()}: sections must be non-negative sizes, got {sizes}")
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
    return apply(S.Where, (const(a, like, "where"), const(b, like, "where")),
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


def cross_entropy(logits: Tensor, targets: Any, reduction: str = "mean",
                  ignore_index: int = -100) -> Tensor:
    """Softmax cross-entropy of logits (..., K) against integer targets (...).

    Targets equal to `ignore_index` (default -100, as PyTorch) contribute nothing; the mean is
    over the other targets.
    """
    return apply(N.CrossEntropy, (_t(logits, "cross_entropy"), _t(targets, "cross_entropy")),
                 reduction=reduction, ignore_index=int(ignore_index))


def nll_loss(logp: Tensor, targets: Any, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood: -logp[..., target] for log-probabilities and integer targets."""
    return apply(N.NllLoss, (logp, _t(targets, "nll_loss")), reduction=reduction)


def mse_loss(pred: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean (or summed) squared error."""
    return apply(N.MseLoss, (pred, const(target, pred, "mse_loss")),
                 reduction=reduction)


def embedding(weight: Tensor, ids: Any) -> Tensor:
    """Rows of `weight` (V, D) picked by integer `ids` (...), giving (..., D)."""
    return apply(N.Embedding, (weight, _t(ids, "embedding")))


import builtins as _builtins  # noqa: E402  (sum/max/min/abs above shadow the builtins here)

builtin_sum = _builtins.sum

# one public function per op of the table, under the op's name (AttributeError at import if not)
__all__ = sorted(name for name, op in OPS.items() if op.public)
_missing = [name for name in __all__ if not callable(globals().get(name))]
if _missing:
    raise ImportError(f"tinygraph.ops: ops of the table without a public function: {_missing}")


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
    T.__abs__ = lambda a: abs(a)
    T.__getitem__ = getitem
    for fn in (exp, log, tanh, sigmoid, relu, abs, sqrt, log1p, clamp, sum, mean, max, min,
               reshape, transpose, unsqueeze, squeeze, astype, softmax, log_softmax, argmax, split,
               detach):
        setattr(T, fn.__name__, fn)
    T.T = property(lambda a: transpose(a), doc="The transpose (axes reversed).")
    # comparisons: elementwise bool tensors, not recorded (masks for `where`); __hash__ stays
    # identity (set in the class), so tensors still key dicts and sets
    for name in ("eq", "ne", "lt", "le", "gt", "ge"):
        setattr(T, f"__{name}__", _compare(getattr(operator, name)))


def _compare(fn: Any) -> Any:
    def compare(a: Tensor, b: Any) -> Tensor:
        other = b.data if isinstance(b, Tensor) else b
        if isinstance(other, (list, tuple)):
            other = np.asarray(other)
        return Tensor(np.asarray(fn(a.data, other)))
    compare.__name__ = f"__{fn.__name__}__"
    return compare


_install()
