"""The NaN/Inf checks that `detect_anomaly()` switches on, and the error they raise.

Flow: sits beside the tape, below everything that records: `tensor.apply` calls `check_forward`
after each op and the backward sweep calls `check_backward` on each gradient it sends, while the
mode is on. It lives apart from `debug` (which holds the user-facing switch and `gradcheck`, and
builds on the ops) so that the import graph of the package runs one way.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import tape as _tp


class AnomalyError(FloatingPointError):
    """A NaN or Inf appeared; the message names the op, its scope and step and the source line."""


def _summary(a: np.ndarray) -> str:
    if a.dtype.kind not in "fc":
        return f"dtype {a.dtype}"
    fin = np.isfinite(a)
    parts = [f"{int(np.isnan(a).sum())} NaN", f"{int(np.isinf(a).sum())} Inf of {a.size}"]
    if fin.any():
        parts.append(f"finite range [{a[fin].min():.3g}, {a[fin].max():.3g}]")
    return ", ".join(parts)


def created_at(src: str | None) -> str:
    """How a message names the source line of an op, also when none was recorded."""
    if src:
        return f"created at {src}"
    return ("source line not recorded (record the forward inside detect_anomaly() or "
            "tg.recording(source=True) to see it)")


def check_forward(op: str, inputs: Sequence[Any], out: np.ndarray) -> None:
    """Raise `AnomalyError` when the output of `op` holds a NaN or an Inf."""
    if out.dtype.kind in "fc" and not np.isfinite(out).all():
        shapes = ", ".join(str(t.shape) for t in inputs)
        bad_in = [k for k, t in enumerate(inputs)
                  if t.data.dtype.kind in "fc" and not np.isfinite(t.data).all()]
        cause = (f"input {bad_in[0]} was already non-finite" if bad_in
                 else "all inputs were finite")
        raise AnomalyError(
            f"forward: {op}{_tp.where()} produced a non-finite value ({_summary(out)}); "
            f"input shapes {shapes}; {cause}; {created_at(_tp.user_frame_line())}")


def check_backward(tape: Any, i: int, j: int, g: np.ndarray) -> None:
    """Raise `AnomalyError` when the gradient node `i` sends to its input `j` is not finite."""
    if g.dtype.kind in "fc" and not np.isfinite(g).all():
        node, target = tape.node(i), tape.node(j)
        raise AnomalyError(
            f"backward: the gradient that {node.op}{_tp.where(node.scope, node.step)} sends to its "
            f"input ({target.op}{' ' + target.name if target.name else ''}, shape "
            f"{target.shape}) is non-finite ({_summary(g)}); the op: {created_at(node.src)}")
