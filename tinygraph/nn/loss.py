"""Sequence losses and the per-step gradient reader: what a training loop needs beside modules.

Flow: a recurrent module returns per-step outputs o(t) -> `sequence_loss` records one L(t) per
step (named ``L``, tagged t) and their total (named ``L``, no step) -> backward ->
`step_grads` reads each step's share of a shared parameter's gradient, the book's ∇W(t).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

import tinygraph as tg
from tinygraph.tensor import Tensor


def sequence_loss(o: Sequence[Tensor], y: Any, mask: Any = None, reduction: str = "mean",
                  steps: Sequence[int] | None = None, per_step: bool = True,
                  yhat: bool = False, terms: list | None = None) -> Tensor:
    """Cross-entropy summed over the steps of a sequence: L = sum_t L(t) (eq. 10.12-10.14).

    Parameters
    ----------
    o : list of Tensor (B, K)
        The output pre-activations o(1)..o(tau).
    y : int array (B, tau)
        Targets y(t).
    mask : array (B, tau) of bool or 0/1, optional
        Positions that count (padding excluded).
    reduction : {"mean", "sum"}
        "sum" is the book's L; "mean" divides by the number of counted positions.
    steps : list of int, optional
        Step tags of the L(t) nodes (default 1..tau).
    per_step : bool
        True records one L(t) per step (the book's graph); False stacks the o(t) and records a
        single cross-entropy over all steps: the same value and gradients with fewer ops.
    yhat : bool
        Record ŷ(t) = softmax(o(t)) (named ``yhat``) and L(t) = -log ŷ(t)[y(t)] from it, as
        eq. 10.8-10.11 write it, instead of the fused, more stable cross-entropy (the same
        value; slower). Needs ``per_step=True``.
    terms : list, optional
        A list the per-step terms L(1..tau) are appended to (with ``per_step=True``): what
        ``tg.flow(terms, out.h)`` takes to measure the per-loss-term gradient flow.

    Returns
    -------
    Tensor
        A scalar named ``L``.
    """
    y = np.asarray(y.data if isinstance(y, Tensor) else y)
    if y.ndim != 2 or y.dtype.kind not in "iu" or y.shape[1] != len(o):
        raise ValueError(f"sequence_loss: expected int targets y of shape (B, {len(o)}), got "
                         f"shape {y.shape} dtype {y.dtype}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"sequence_loss: reduction must be 'mean' or 'sum', got {reduction!r}")
    m = None if mask is None else np.asarray(mask, dtype=bool)
    if m is not None and m.shape != y.shape:
        raise ValueError(f"sequence_loss: mask of shape {m.shape} does not match y {y.shape}")
    if terms is not None and not per_step:
        raise ValueError("sequence_loss: terms= collects the per-step L(t); it needs "
                         "per_step=True")
    if yhat and not per_step:
        raise ValueError("sequence_loss: yhat=True records one yhat(t) per step; it needs "
                         "per_step=True")
    if not per_step:
        logits = o[0][:, None] if len(o) == 1 else tg.stack(list(o), axis=1)   # (B, tau, K)
        if m is None:
            total = tg.cross_entropy(logits, y, reduction="sum")
        else:
            total = (tg.cross_entropy(logits, y, reduction="none") * m).sum()
        count = y.size if m is None else int(m.sum())
        return (total / max(count, 1) if reduction == "mean" else total).named("L")
    steps = list(range(1, len(o) + 1)) if steps is None else list(steps)
    losses = []
    for k, (ot, t) in enumerate(zip(o, steps)):
        with tg.step(t):
            yt = tg.tensor(y[:, k], name="y")     # the target y(t): a node of the book's figure
            if yhat:                               # L(t) = -log yhat(t)[y(t)], eq. 10.11
                yh = tg.softmax(ot).named("yhat")
                if m is None:
                    lt = tg.nll_loss(tg.log(yh), yt, reduction="sum")
                else:
                    lt = (tg.nll_loss(tg.log(yh), yt, reduction="none") * m[:, k]).sum()
            elif m is None:
                lt = tg.cross_entropy(ot, yt, reduction="sum")
            else:
                lt = (tg.cross_entropy(ot, yt, reduction="none") * m[:, k]).sum()
            losses.append(lt.named("L"))
    if terms is not None:
        terms.extend(losses)
    total = losses[0] if len(losses) == 1 else tg.stack(losses).sum()
    if reduction == "mean":
        count = y.size if m is None else int(m.sum())
        total = total / max(count, 1)
    return total.named("L")


def step_grads(param: Tensor, t: Tensor | None = None) -> dict[int | None, np.ndarray]:
    """Each time step's contribution ∇W(t) to a shared parameter's gradient (the copies W(t)).

    Record the forward inside ``with nn.per_step_copies():`` so every step reads the shared
    weight itself; after ``loss.backward(keep_grads=True)`` the contribution of each read is
    known, and this sums them per step. The values add up to ``param.grad``. (Without
    `per_step_copies` a loop reads W once, before its first step: one entry, step None.)

    Parameters
    ----------
    param : Parameter
    t : Tensor, optional
        Any tensor of the graph (the loss); default: the most recent graph.

    Returns
    -------
    dict mapping step -> ndarray (step None collects reads outside any step).

    Examples
    --------
    >>> with per_step_copies():                       # doctest: +SKIP
    ...     loss = sequence_loss(rnn(x).o, y)
    >>> loss.backward(keep_grads=True)                # doctest: +SKIP
    >>> g = step_grads(rnn.cell.W, loss)             # doctest: +SKIP
    >>> np.allclose(sum(g.values()), rnn.cell.W.grad)  # doctest: +SKIP
    True
    """
    out: dict[int | None, np.ndarray] = {}
    for s, _scope, arr in tg.contributions(param, t):
        out[s] = arr.copy() if s not in out else out[s] + arr
    return out
