"""Debugging tools: anomaly detection (the first NaN/Inf, with its op, scope and time step) and
gradcheck (analytic gradients against central differences).

Flow: sits beside the tape; `apply` and the backward sweep call the checks of `anomaly` only
while `detect_anomaly()` is on. `gradcheck` builds on the ops, so this module sits above them.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from . import tape as _tp
from .anomaly import AnomalyError
from .ops import mul, sum as tsum
from .tensor import Tensor

__all__ = ["AnomalyError", "detect_anomaly", "gradcheck", "GradcheckError", "GradcheckResult"]


@contextlib.contextmanager
def detect_anomaly() -> Iterator[None]:
    """Raise `AnomalyError` at the first NaN/Inf made in forward or backward inside.

    The error names the op, its scope and time step, the shapes, a value summary and the user's
    source line (source lines are recorded while the mode is on).
    """
    with _tp.Switch({"anomaly": True, "source": True}):
        yield


class GradcheckError(AssertionError):
    """Analytic and numerical gradients disagree."""


@dataclass(frozen=True)
class GradcheckResult:
    """Outcome of `gradcheck`: the worst element over all inputs."""

    ok: bool
    max_abs_err: float
    max_rel_err: float
    worst_input: int
    worst_index: tuple
    analytic: float
    numeric: float
    reason: str = ""  # set when the check could not compare values (e.g. a wrong grad shape)

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if self.reason:
            return f"gradcheck FAILED: {self.reason}"
        return (f"gradcheck {'passed' if self.ok else 'FAILED'}: worst element input "
                f"{self.worst_input} index {self.worst_index}: analytic {self.analytic:.10g}, "
                f"numeric {self.numeric:.10g} (abs err {self.max_abs_err:.3g}, rel err "
                f"{self.max_rel_err:.3g})")


def gradcheck(fn: Callable[..., Any], inputs: Sequence[Any], eps: float = 1e-6,
              atol: float = 1e-6, rtol: float = 1e-5, seed: int = 0,
              raise_exception: bool = True) -> GradcheckResult:
    """Compare backward's gradients of ``fn(*inputs)`` with central differences, in float64.

    Non-scalar outputs are reduced with a fixed random projection. float32 inputs are upcast to
    float64 copies (with a warning): finite differences in float32 are too coarse to judge.
    Returns a `GradcheckResult`; raises `GradcheckError` on failure unless told not to.
    """
    xs = []
    for k, x in enumerate(inputs):
        if not isinstance(x, Tensor):
            raise TypeError(f"gradcheck: input {k} is a {type(x).__name__}, expected a Tensor")
        if x.dtype == np.float32:
            warnings.warn("gradcheck: float32 input upcast to float64 for the check",
                          stacklevel=2)
        if x.dtype.kind == "f":
            xs.append(Tensor(x.data.astype(np.float64), requires_grad=x.requires_grad,
                             name=x.name))
        else:
            xs.append(x)
    wrt = [k for k, x in enumerate(xs) if x.requires_grad]
    if not wrt:
        raise ValueError("gradcheck: no input requires grad")
    rng = np.random.default_rng(seed)
    out0 = fn(*xs)
    proj = rng.standard_normal(out0.shape)

    def scalar(*args: Any) -> Any:
        return tsum(mul(fn(*args), proj))

    loss = scalar(*xs)
    loss.backward()
    worst = (0.0, 0.0, -1, (), 0.0, 0.0, True)
    ok_all = True
    for k in wrt:
        x = xs[k]
        analytic = x.grad if x.grad is not None else np.zeros_like(x.data)
        if analytic.shape != x.data.shape:
            res = GradcheckResult(False, float("inf"), float("inf"), k, (), float("nan"),
                                  float("nan"), reason=f"the analytic gradient of input {k} has "
                                  f"shape {analytic.shape}, but the input has shape {x.shape}")
            if raise_exception:
                raise GradcheckError(str(res))
            return res
        data = x.data
        for idx in np.ndindex(*data.shape):
            orig = data[idx]
            data[idx] = orig + eps
            with _tp.no_grad():
                fp = float(scalar(*xs).data)
            data[idx] = orig - eps
            with _tp.no_grad():
                fm = float(scalar(*xs).data)
            data[idx] = orig
            num = (fp - fm) / (2 * eps)
            ana = float(analytic[idx])
            err = abs(ana - num)
            rel = err / max(abs(num), abs(ana), 1e-12)
            ok = err <= atol + rtol * abs(num)
            ok_all &= ok
            if (not ok and worst[6]) or (ok == worst[6] and err > worst[0]):
                worst = (err, rel, k, idx, ana, num, ok)
    res = GradcheckResult(ok_all, worst[0], worst[1], worst[2], worst[3], worst[4], worst[5])
    if not ok_all and raise_exception:
        raise GradcheckError(str(res))
    return res
