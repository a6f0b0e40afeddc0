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

import contextlib
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

import tinygraph as tg
from tinygraph.tensor import Tensor

from .module import (Module, Transposed, as_float_seq, check_ids, init_uniform, initial_state,
                     is_ids, who)

State = Any   # a Tensor, a tuple of Tensors (h, c) or a list of Tensors (one per layer)


def per_step_mode() -> bool:
    """True inside `per_step_copies` (each step reads the shared weights itself) or
    `per_step` (every op of every step recorded: no fused recurrences)."""
    from . import module      # read at call time: module.py owns the copies switch
    return bool(module._PER_STEP[0] or _RECORD_PER_STEP[0])


_RECORD_PER_STEP = [False]


@contextlib.contextmanager
def per_step() -> Iterator[None]:
    """Record every recurrence step by step, as the book draws it, instead of fused.

    A fused `RNN` (the default) records the loop as a few batched ops and still exports the
    per-step graph; inside this context each step records its own ops, for hooks,
    ``retain_grad`` or ``tg.grad`` on the per-step tensors h(t).

    Examples
    --------
    >>> with per_step():                               # doctest: +SKIP
    ...     out = rnn(x)          # h(t), o(t): ops of their own step
    """
    old = _RECORD_PER_STEP[0]
    _RECORD_PER_STEP[0] = True
    try:
        yield
    finally:
        _RECORD_PER_STEP[0] = old


def make_rng(rng: Any) -> np.random.Generator:
    """A Generator from a seed, a Generator or None."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


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

@dataclass
class RNNOutput:
    """What a recurrent module returns.

    Attributes
    ----------
    o : list of Tensor
        Output pre-activations o(t), each (B, K), for the steps in `steps`.
    h : list of Tensor
        States h(1)..h(tau), each (B, H) (for a stacked RNN: the top layer's).
    steps : list of int
        The step of each entry of `o`.
    tokens : list of Tensor
        Greedy choices argmax o(t), each int (B,), when the network fed its own output back.
    state : Tensor, tuple or list
        The final carried state, to pass as ``state=`` to the next chunk: h(tau) (an `RNN`,
        `GRU`), (h(tau), c(tau)) (an `LSTM`), one per layer (a `DeepRNN`).
    c : list of Tensor
        Cell states c(1)..c(tau) of an `LSTM` (empty otherwise).
    """

    o: list = field(default_factory=list)
    h: list = field(default_factory=list)
    steps: list = field(default_factory=list)
    tokens: list = field(default_factory=list)
    state: Any = None
    c: list = field(default_factory=list)

    @property
    def last(self) -> Tensor:
        """o(tau) if there are outputs, else h(tau)."""
        return self.o[-1] if self.o else self.h[-1]


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


def state_parts(state: State) -> tuple:
    """The tensors of a carried state: (h,) for one tensor, (h, c) for a pair."""
    return tuple(state) if isinstance(state, (tuple, list)) else (state,)


def masked(mask: np.ndarray, new: State, old: State, names: Sequence[str]) -> State:
    """Keep `old` where `mask` (B, 1) is False: ``where(mask, new, old)``, named `names`."""
    got = tuple(tg.where(mask, n, o).named(name)
                for n, o, name in zip(state_parts(new), state_parts(old), names))
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


class CellSequence(Recurrent):
    """A cell run over a batch of sequences, with an optional output layer: `RNN`, `LSTM`, `GRU`.

    Subclasses set ``cell_class`` (`RNNCell`, `LSTMCell`, `GRUCell`): a Module with
    ``state_names`` (``("h",)`` or ``("h", "c")``), ``transposes()`` and
    ``forward(x_t, state, name, wt)``, where `name` labels the new state (a str, or a tuple
    for several tensors; None leaves them unnamed).

    Parameters
    ----------
    input_size : int
        D; integer inputs are ids in [0, D), acting as one-hot x(t).
    hidden_size : int
        H.
    output_size : int, optional
        K; None for a network without outputs (only states).
    output : {"every", "last"}
        o(t) at every step, or only at the last (fig. 10.5: summarising a sequence).
    rng : int or Generator, optional
    dtype : numpy dtype
    name : str, optional
    """

    cell_class: type = Module

    def __init__(self, input_size: int, hidden_size: int, output_size: int | None = None,
                 output: str = "every", rng: Any = None, dtype: Any = np.float64,
                 name: str | None = None) -> None:
        super().__init__(name)
        if output not in ("every", "last"):
            raise ValueError(f"{type(self).__name__}: output must be 'every' or 'last', got "
                             f"{output!r}")
        r = make_rng(rng)
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        self.output = output
        self.cell = self.cell_class(input_size, hidden_size, rng=r, dtype=dtype)
        if output_size is not None:
            add_output(self, r, output_size, hidden_size, dtype)

    def _label(self, named: bool) -> Any:
        names = self.cell.state_names
        return None if not named else names[0] if len(names) == 1 else names

    def forward(self, x: Any, state: Any = None, lengths: Any = None, **old: Any) -> RNNOutput:
        """Run over a batch of sequences.

        Parameters
        ----------
        x : array (B, tau, D) float, or int ids (B, tau)
        state : array (B, H), or a tuple (h0, c0) for an LSTM, optional
            h(0) (and c(0)); zeros by default (``h0=`` is the deprecated name). Tensors
            (``out.state`` of an earlier chunk) are used as they are.
        lengths : int array (B,), optional
            True lengths of padded sequences: a state stops changing after its sequence ends,
            so ``h[-1]`` and the "last" output belong to each sequence's own last step.

        Returns
        -------
        RNNOutput
            ``h`` (and ``c``) per step, ``o`` per output step, ``state`` the final state.
        """
        state = legacy_state(self, state, old, "h0")
        names = self.cell.state_names
        seq = SequenceInput(self, x, self.input_size)
        B, T = seq.batch, seq.length
        masks = length_masks(self, lengths, B, T)
        s0 = start_state(self, state, B, self.hidden_size, self.cell.parameters()[0].dtype,
                         names)
        wt = self.cell.transposes()
        VT = Transposed(self.V) if self.output_size is not None else None
        every = self.output == "every"
        r = run(lambda t, s, named: self.cell(seq.at(t), s, self._label(named), wt), s0,
                range(1, T + 1), masks, names,
                emit=None if VT is None else
                lambda t, s: self.readout(self.top(s), VT) if every or t == T else None)
        out = RNNOutput(o=r.outputs, h=[self.top(s) for s in r.states], steps=r.steps,
                        state=r.final)
        if len(names) > 1:                        # an LSTM's cell states c(t)
            out.c = [s[1] for s in r.states]
        return out

    def step(self, x: Tensor, state: State, wt: tuple | None = None) -> State:
        """One step from x(t) and the state at t-1 (call inside ``tg.step(t)`` and this scope)."""
        return self.cell(x, state, wt=wt)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, {self.output_size}, "
                f"output={self.output!r}")
