"""Creation functions: `tensor`, `as_tensor`, `from_numpy`, `zeros`, `ones`, `full`, `randn`,
`uniform`.

Flow: user code -> **creation** -> `Tensor` leaves that ops record (see `tensor`). What copies and
what shares (as in PyTorch): `tensor()` copies the data it is given; `as_tensor()` and
`from_numpy()` share it when the dtype already fits.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .registry import DEFAULT_DTYPE
from .tensor import Tensor, to_array

def tensor(data: Any, requires_grad: bool = False, name: str | None = None,
           dtype: Any = None) -> Tensor:
    """A new tensor holding a copy of `data` (a number, a nested list or an array).

    Floats become float64 unless they are float32 or `dtype` says otherwise. The data is copied,
    as ``torch.tensor`` does: a later write to the caller's array does not change the tensor (use
    `as_tensor` / `from_numpy` to share memory).

    Examples
    --------
    >>> tensor([1.0, 2.0], requires_grad=True).dtype
    dtype('float64')
    """
    return Tensor(to_array(data, dtype, "tensor", copy=True), requires_grad=requires_grad,
                  name=name)


def as_tensor(data: Any, dtype: Any = None) -> Tensor:
    """A tensor that shares `data`'s memory when it is already an array of a fitting dtype.

    As ``torch.as_tensor``: no copy for a numpy array whose dtype is kept (float32, float64,
    ints, bools), so writes to one show in the other; a Tensor is returned as it is.
    """
    if isinstance(data, Tensor) and (dtype is None or data.dtype == np.dtype(dtype)):
        return data
    return Tensor(to_array(data, dtype, "as_tensor"))


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing the memory of the numpy array `array` (as ``torch.from_numpy``).

    The dtype is kept as it is (a float16 array is refused: make it float32 or float64 first).
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy array, got {type(array).__name__}")
    if array.dtype.kind == "f" and array.dtype not in (np.float32, np.float64):
        raise TypeError(f"from_numpy: dtype {array.dtype} is not supported without a copy; "
                        f"expected float32 or float64 (or use tg.tensor, which converts)")
    return Tensor(to_array(array, array.dtype, "from_numpy"))


def _shape(args: tuple, who: str) -> tuple:
    """A shape from ``f(2, 3)`` or ``f((2, 3))`` arguments, checked."""
    shape = args[0] if len(args) == 1 and not isinstance(args[0], (int, np.integer)) else args
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"{who}: shape must be ints or a tuple of ints, got {shape!r} "
                        f"({type(shape).__name__})")
    if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in shape):
        raise TypeError(f"{who}: shape must be ints, got {tuple(shape)!r}")
    if any(s < 0 for s in shape):
        raise ValueError(f"{who}: shape must be non-negative, got {tuple(shape)!r}")
    return tuple(int(s) for s in shape)


def zeros(*shape: Any, dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False,
          name: str | None = None) -> Tensor:
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``."""
    shp = _shape(shape, "zeros")
    return Tensor(np.zeros(shp, dtype=dtype), requires_grad=requires_grad, name=name)


def ones(*shape: Any, dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False,
         name: str | None = None) -> Tensor:
    """A tensor of ones: ``ones(2, 3)`` or ``ones((2, 3))``."""
    shp = _shape(shape, "ones")
    return Tensor(np.ones(shp, dtype=dtype), requires_grad=requires_grad, name=name)


def full(shape: Any, value: float, dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False,
         name: str | None = None) -> Tensor:
    """A tensor filled with `value`."""
    return Tensor(np.full(_shape((shape,), "full"), value, dtype=dtype), requires_grad=requires_grad,
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
    shp = _shape(shape, "randn")
    data = rng_from(rng).standard_normal(shp) * scale
    return Tensor(data.astype(dtype), requires_grad=requires_grad, name=name)


def uniform(shape: Any, low: float = 0.0, high: float = 1.0, rng: Any = None,
            dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False,
            name: str | None = None) -> Tensor:
    """Uniform samples in [low, high), from a seed or Generator `rng`."""
    data = rng_from(rng).uniform(low, high, _shape((shape,), "uniform"))
    return Tensor(data.astype(dtype), requires_grad=requires_grad, name=name)
