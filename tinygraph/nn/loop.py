"""The one recurrent loop of tinygraph.nn: steps over time, padding masks, h(0), the output layer.

Flow: a recurrent module (`RNN`, `LSTM`, `GRU`, `BidirectionalRNN`, `Encoder`, `Decoder`,
`DeepRNN`, `JordanRNN`, `DynamicalSystem`) gives `run` its cell step and its initial state ->
`run` calls the step once per time step inside ``tg.step(t)``, applies the padding mask (a state
stops changing after its sequence ends) and names the carried tensors (``h``, ``c``, ``g``, ``s``)
-> the module reads o(t) through `output` -> the tape holds the book's unfolded graph.

Every module takes its carried state as ``state=`` (a Tensor, or a tuple such as (h, c) for an
LSTM, or a list with one entry per layer for a stacked RNN) and returns the final one as
``out.state``; `legacy_state` keeps the old keyword names (``h0``, ``s0``, ``g0``) working with a
DeprecationWarning.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

import tinygraph as tg
from tinygraph.tensor import Tensor

from .module import (Module, Transposed, as_float_seq, check_ids, init_uniform, initial_state,
                     is_ids, who)

State = Any   # a Tensor, a tuple of Tensors (h, c) or a list of Tensors (one per layer)


# ------------------------------------------------------------------------------------------------
# inputs over time and their padding
# ------------------------------------------------------------------------------------------------

class SequenceInput:
    """Per-step access to a batch of sequences: float (B, T, D) or int ids (B, T).

    x(t) comes out as a leaf named ``x`` (tagged with the step it is first used in); a float
    Tensor that is part of a graph is sliced with recorded ops, so gradients reach it.
    """

    def __init__(self, mod: Module, x: Any, size: int, what: str = "input x") -> None:
        self.ids = is_ids(x)
        if self.ids:
            self.data = check_ids(mod, x, size, ndim=2, what=what)
            self.tensor = None
            if self.data.shape[1] == 0:
                raise ValueError(f"{who(mod)}: {what} has length T = 0; expected at least one step")
        else:
            self.tensor = as_float_seq(mod, x, size, what)
            self.data = self.tensor.data
        self.tracked = self.tensor is not None and (self.tensor.requires_grad or
                                                    self.tensor.op is not None)
        self.batch, self.length = self.data.shape[:2]
        # time-major copy: x(t) is then a contiguous (B, D) block, which matmul reads faster
        self.steps = None if self.tracked else np.ascontiguousarray(np.swapaxes(self.data, 0, 1))

    def at(self, t: int) -> Tensor:
        """x(t) for t = 1..T."""
        if self.tracked:
            return self.tensor[:, t - 1].named("x")
        return tg.tensor(self.steps[t - 1], name="x")


def length_masks(mod: Module, lengths: Any, batch: int, T: int) -> np.ndarray | None:
    """(T, B, 1) bool: True where step t is inside sequence b; None when all are full length."""
    if lengths is None:
        return None
    n = np.asarray(lengths)
    if n.shape != (batch,) or n.dtype.kind not in "iu" or n.min() < 1 or n.max() > T:
        raise ValueError(f"{who(mod)}: expected lengths of shape ({batch},) with ints in "
                         f"[1, {T}], got {n.tolist() if n.size < 20 else n.shape}")
    if (n == T).all():
        return None
    return (np.arange(1, T + 1)[:, None] <= n[None, :])[:, :, None]


def project(x: Tensor, UT: Tensor) -> Tensor:
    """x(t) U^T (B, H): a matmul for float x (B, D), a lookup of U's column for int ids (B,)."""
    return tg.embedding(UT, x) if x.dtype.kind in "iu" else x @ UT


# ------------------------------------------------------------------------------------------------
# the carried state: h(0) made and named, old keyword names
# ------------------------------------------------------------------------------------------------

def start_state(mod: Module, state: Any, batch: int, size: int, dtype: Any,
                names: Sequence[str] = ("h",), step: int = 0) -> State:
    """The initial state, h(0) or (h(0), c(0)): zeros where not given, each checked (B, size).

    New tensors are made inside ``tg.step(step)`` and named after `names`, so views show h(0);
    a Tensor passed in (a state carried from an earlier chunk) is used as it is. With one name
    the state is a Tensor, with several a tuple (None entries become zeros).
    """
    if len(names) == 1:
        return initial_state(mod, state, batch, size, dtype, names[0], step, "state")
    parts = (None,) * len(names) if state is None else state
    if not isinstance(parts, (tuple, list)) or len(parts) != len(names):
        raise ValueError(f"{who(mod)}: expected state as a tuple ({', '.join(names)}) of arrays "
                         f"(B, {size}), got {type(state).__name__}")
    return tuple(initial_state(mod, p, batch, size, dtype, n, step, f"state {n}({step})")
                 for p, n in zip(parts, names))


def legacy_state(mod: Module, state: Any, old: dict, *keys: str) -> Any:
    """`state` after reading the deprecated keywords `keys` (``h0``, ``s0``, ...) from `old`.

    One key gives its value; several give a tuple in the order of `keys` (the state of a module
    that carries several tensors, such as ``(h0, g0)``). Unknown keywords raise TypeError, as a
    Python call would.
    """
    unknown = [k for k in old if k not in keys]
    if unknown:
        raise TypeError(f"{type(mod).__name__}.forward() got an unexpected keyword argument "
                        f"{unknown[0]!r}")
    if not old:
        return state
    warnings.warn(f"{who(mod)}: {', '.join(k + '=' for k in old)} is deprecated; pass the "
                  f"initial state as state=" + (f"({', '.join(keys)})" if len(keys) > 1 else ""),
                  DeprecationWarning, stacklevel=3)
    if state is not None:
        raise TypeError(f"{who(mod)}: got both state= and the deprecated {', '.join(old)}=")
    return old.get(keys[0]) if len(keys) == 1 else tuple(old.get(k) for k in keys)


# ------------------------------------------------------------------------------------------------
# the loop
# ------------------------------------------------------------------------------------------------

StepFn = Callable[[int, State, bool], State]


@dataclass
class LoopResult:
    """What `run` returns.

    Attributes
    ----------
    states : list
        The state after each step, in the order the steps ran.
    outputs : list
        What ``emit`` returned (o(t)), in order, for the steps in `steps`.
    steps : list of int
    final : State
        The state after the last step (the one to carry into the next chunk).
    """

    states: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    steps: list = field(default_factory=list)
    final: State = None


def _parts(state: State) -> tuple:
    return tuple(state) if isinstance(state, (tuple, list)) else (state,)


def masked(mask: np.ndarray, new: State, old: State, names: Sequence[str]) -> State:
    """Keep `old` where `mask` (B, 1) is False: ``where(mask, new, old)``, named `names`."""
    got = tuple(tg.where(mask, n, o).named(name)
                for n, o, name in zip(_parts(new), _parts(old), names))
    return got if isinstance(new, tuple) else list(got) if isinstance(new, list) else got[0]


def run(step: StepFn, state: State, times: Iterable[int], masks: np.ndarray | None = None,
        names: Sequence[str] = ("h",), emit: Callable[[int, State], Tensor | None] | None = None,
        until: Callable[[State], bool] | None = None) -> LoopResult:
    """Run a cell over time: ``state = step(t, state, named)`` inside ``tg.step(t)`` per t.

    Parameters
    ----------
    step : callable (t, state, named) -> state
        One step of the recurrence. With ``named`` True it names the new state's tensors
        (``h``, ``c``); with False (padding) it leaves them unnamed and the loop names the
        masked states instead, so ``h`` always labels the state that is carried on.
    state : Tensor, tuple or list of Tensors
        The initial state (see `start_state`).
    times : iterable of int
        The steps, e.g. ``range(1, T + 1)`` or ``range(T, 0, -1)`` for a backward chain.
    masks : bool array (T, B, 1), optional
        From `length_masks`: where False, the state keeps its previous value (``where``).
    names : sequence of str
        Names of the state's tensors, used for the masked states.
    emit : callable (t, state) -> Tensor or None, optional
        Called inside step t after the update, e.g. the output layer o(t); None means no
        output at this step.
    until : callable (state) -> bool, optional
        Stop after the first step where it returns True (greedy decoding).

    Returns
    -------
    LoopResult

    Examples
    --------
    >>> cell = RNNCell(3, 4, rng=0)                                   # doctest: +SKIP
    >>> h0 = start_state(cell, None, 2, 4, np.float64)                # doctest: +SKIP
    >>> r = run(lambda t, h, named: cell(x[t], h, "h" if named else None), h0,
    ...         range(1, 6))                                          # doctest: +SKIP
    >>> len(r.states), r.final is r.states[-1]                         # doctest: +SKIP
    (5, True)
    """
    res = LoopResult()
    named = masks is None
    for t in times:
        with tg.step(t):
            new = step(t, state, named)
            state = new if named else masked(masks[t - 1], new, state, names)
            res.states.append(state)
            if emit is not None:
                o = emit(t, state)
                if o is not None:
                    res.outputs.append(o)
                    res.steps.append(t)
        if until is not None and until(state):
            break
    res.final = state
    return res


# ------------------------------------------------------------------------------------------------
# the output layer o(t) = c + V h(t)
# ------------------------------------------------------------------------------------------------

def add_output(mod: Module, rng: np.random.Generator, output_size: int, in_size: int,
               dtype: Any) -> None:
    """Register the output layer's V (K, in_size) and c (K,) on `mod` (book names, no scope)."""
    mod.param("V", init_uniform(rng, (output_size, in_size), in_size, dtype))
    mod.param("c", init_uniform(rng, (output_size,), in_size, dtype))


def output(mod: Module, h: Tensor, VT: Transposed | None = None) -> Tensor:
    """o(t) = c + V h(t) (B, K), named ``o``; `VT` is the loop's V^T (default: read V now)."""
    return (h @ (mod.V.T if VT is None else VT()) + mod.c).named("o")


class Recurrent(Module):
    """Base of the sequence modules with an output layer (`RNN`, `LSTM`, `GRU`, `DeepRNN`).

    What a stream trainer (`tinygraph.tbptt.sequence_step`) needs, in one place: subclasses
    define ``step(x_t, state)`` (one time step, inside ``tg.step(t)`` and the module's scope);
    `top` picks the tensor o(t) reads from a state and `readout` is o(t) = c + V h(t).
    """

    @staticmethod
    def top(state: State) -> Tensor:
        """The tensor the output layer reads from a state: h(t)."""
        return state

    def readout(self, h: Tensor, VT: Transposed | None = None) -> Tensor:
        """o(t) = c + V h(t), named ``o``."""
        return output(self, h, VT)
