"""Truncated backpropagation through time, TBPTT(k1, k2) (Williams & Peng, 1990).

Flow: a long stream is processed one step at a time by a user's ``step(state, t)`` (usually
`sequence_step` around a `tinygraph.nn` model); every k1 steps the losses of those k1 steps are
backpropagated through the last k2 steps only, then (optionally) an optimizer moves the weights.
Each window records its own small tape, released by its backward, and only the states' values
are kept between windows, so memory stays O(k2) however long the stream is.

How a window is formed: at update time t the last k2 steps are recorded again from the stored
value of the state at t - k2, which enters the graph as a plain leaf (the cut). The losses of
steps t-k1+1..t are summed and backpropagated. With k1 = k2 this is the usual "carry the state,
detach every k steps"; with k1 < k2 windows overlap and the overlapping steps are recomputed with
the current weights (Williams & Peng keep the older activations instead; the two agree whenever
the weights did not change in between, e.g. when gradients are only accumulated). A last,
shorter window (T not a multiple of k1) still reaches back k2 steps. With k2 >= T no gradient is
truncated: the accumulated gradients equal full BPTT, whatever k1.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import tinygraph as tg
from tinygraph.nn.loop import state_parts
from tinygraph.tensor import Tensor

__all__ = ["tbptt", "TBPTTResult", "sequence_step"]

State = Any   # a Tensor, or a list / tuple of Tensors (one per layer)


@dataclass
class TBPTTResult:
    """Per-update record of a `tbptt` run.

    Attributes
    ----------
    losses : list of float
        The summed loss of the k1 new steps of each update.
    windows : list of (int, int, int)
        (first recorded step, first step whose loss counts, last step) of each update.
    state : list of ndarray
        The values of the final state (to continue the stream).
    """

    losses: list = field(default_factory=list)
    windows: list = field(default_factory=list)
    state: list = field(default_factory=list)


def _pack(like: State, values: list[np.ndarray], names: list) -> State:
    """The stored state as new leaves (the cut), named as the model named them (h, c)."""
    leaves = [tg.tensor(v, name=n) for v, n in zip(values, names)]
    return type(like)(leaves) if isinstance(like, (list, tuple)) else leaves[0]


def tbptt(step: Callable[[State, int], tuple[State, Tensor]], state0: State, length: int,
          k1: int, k2: int, optimizer: Any = None, clip: float | None = None,
          params: list | None = None,
          on_update: Callable[[int, float], None] | None = None) -> TBPTTResult:
    """Run TBPTT(k1, k2) over a stream of `length` steps.

    Parameters
    ----------
    step : callable ``(state, t) -> (new_state, loss_t)``
        One time step t (1-based) of the model; records ops. Called inside ``tg.step(t)``.
    state0 : Tensor or list of Tensors
        h(0); only its values are used.
    length : int
        Number of steps T of the stream.
    k1 : int
        Steps between updates (the losses of these steps are backpropagated).
    k2 : int
        Steps backpropagated through at each update; k2 >= k1.
    optimizer : Optimizer, optional
        When given: ``zero_grad()`` before and ``step()`` after each window's backward.
        Without it, gradients accumulate in ``.grad`` across windows.
    clip : float, optional
        Global gradient-norm clip applied before each optimizer step (needs `params` or the
        optimizer's parameters).
    params : list of Parameter, optional
    on_update : callable ``(t, loss)``, optional
        Called after each update.

    Returns
    -------
    TBPTTResult

    Examples
    --------
    >>> res = tbptt(sequence_step(rnn, x, y), np.zeros((B, H)), T, k1=20, k2=20,
    ...             optimizer=opt)                                 # doctest: +SKIP
    """
    if not (isinstance(k1, int) and isinstance(k2, int) and 1 <= k1 <= k2):
        raise ValueError(f"tbptt: need integers 1 <= k1 <= k2, got k1={k1}, k2={k2}")
    if length < 1:
        raise ValueError(f"tbptt: the stream must have at least one step, got length={length}")
    if clip is not None and params is None:
        if optimizer is None:
            raise ValueError("tbptt: clip needs params or an optimizer")
        params = optimizer.params
    values = [np.array(s.data if isinstance(s, Tensor) else s) for s in state_parts(state0)]
    kept: dict[int, list] = {0: values}          # t -> values of the state after step t
    names = ["h"] * len(values)                  # the leaves' names until a step names them
    res = TBPTTResult()
    done = 0
    while done < length:
        end = min(done + k1, length)
        start = max(0, end - k2)
        state = _pack(state0, kept[start], names)
        losses = []
        for t in range(start + 1, end + 1):
            with tg.step(t):
                state, loss_t = step(state, t)
            if t > done:
                losses.append(loss_t)
            kept[t] = [s.data for s in state_parts(state)]
            names = [s.name or n for s, n in zip(state_parts(state), names)]
        if optimizer is not None:
            optimizer.zero_grad()
        total = losses[0] if len(losses) == 1 else tg.stack(losses).sum()
        total.backward()
        if clip is not None:
            from .optim import clip_grad_norm
            clip_grad_norm(params, clip)
        if optimizer is not None:
            optimizer.step()
        res.losses.append(float(total.data))
        res.windows.append((start + 1, done + 1, end))
        if on_update is not None:
            on_update(end, res.losses[-1])
        done = end
        for t in [t for t in kept if t < end + 1 - k2]:   # no later window starts before
            del kept[t]
    res.state = kept[length]
    return res


def sequence_step(model: Any, x: Any, y: Any, reduction: str = "mean"
                  ) -> Callable[[State, int], tuple[State, Tensor]]:
    """The ``step(state, t)`` of an `nn.RNN` or `nn.DeepRNN` on a stream (for `tbptt`).

    Parameters
    ----------
    model : nn.RNN, nn.LSTM, nn.GRU (with outputs at every step) or nn.DeepRNN
        Anything with ``step(x_t, state)``, ``top(state)`` and ``readout(h)``.
    x : ids (B, T) or floats (B, T, D)
        The stream's inputs.
    y : int array (B, T)
        Targets; L(t) = cross-entropy of o(t) against y(t).
    reduction : {"mean", "sum"}
        Per-step loss averaged or summed over the batch.
    """
    from . import nn
    seq = nn.loop.SequenceInput(model, x, model.input_size)
    y = np.asarray(y)
    if y.shape != (seq.batch, seq.length) or y.dtype.kind not in "iu":
        raise ValueError(f"sequence_step: expected int targets y of shape "
                         f"({seq.batch}, {seq.length}), got {y.shape} {y.dtype}")
    if not (isinstance(model, nn.Recurrent) and model.output_size
            and getattr(model, "output", "every") == "every"):
        raise TypeError(f"sequence_step: expected an nn.RNN, nn.LSTM or nn.GRU with outputs at "
                        f"every step, or an nn.DeepRNN with outputs; got {type(model).__name__}")

    def step(state: State, t: int) -> tuple[State, Tensor]:
        with tg.scope(model.name):
            state = model.step(seq.at(t), state)
            o = model.readout(model.top(state))                             # (B, K)
            loss = tg.cross_entropy(o, y[:, t - 1], reduction=reduction).named("L")
        return state, loss
    return step
