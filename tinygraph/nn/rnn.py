"""The dynamical system and the Elman RNN of ch. 10.1-10.2: the recurrence everything builds on.

Flow: model code calls `RNN(...)(x)` -> every step t runs inside ``tg.step(t)`` and the cell's
``tg.scope("cell")``, naming x(t), h(t), o(t) -> `sequence_loss` adds L(t) -> backward is BPTT.

A loop transposes each shared weight once, before its first step (the fast path); under
`tinygraph.nn.per_step_copies()` every step reads W itself, so after ``backward(keep_grads=True)``
the gradient of each step's copy W(t) is known (`tinygraph.nn.step_grads`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

import tinygraph as tg
from tinygraph.tensor import Tensor

from .loop import (Recurrent, SequenceInput, add_output, legacy_state, length_masks, project,
                   run, start_state)
from .module import Module, Transposed, init_uniform, who

__all__ = ["RNNCell", "RNN", "RNNOutput", "DynamicalSystem", "SequenceInput", "length_masks",
           "make_rng"]

_rng = np.random.default_rng


def make_rng(rng: Any) -> np.random.Generator:
    """A Generator from a seed, a Generator or None."""
    return rng if isinstance(rng, np.random.Generator) else _rng(rng)


class RNNCell(Module):
    """One step of the Elman recurrence: h(t) = tanh(b + W h(t-1) + U x(t)) (eq. 10.8-10.9).

    Parameters
    ----------
    input_size, hidden_size : int
        D and H. Integer inputs are ids in [0, D) and act as one-hot x(t) (U's column).
    rng : int or Generator, optional
    dtype : numpy dtype
    name : str, optional
    """

    def __init__(self, input_size: int, hidden_size: int, rng: Any = None,
                 dtype: Any = np.float64, name: str | None = None) -> None:
        super().__init__(name)
        r = make_rng(rng)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.U = self.param("U", init_uniform(r, (hidden_size, input_size), hidden_size, dtype))
        self.W = self.param("W", init_uniform(r, (hidden_size, hidden_size), hidden_size, dtype))
        self.b = self.param("b", init_uniform(r, (hidden_size,), hidden_size, dtype))

    def transposes(self) -> tuple[Transposed, Transposed]:
        """U^T and W^T for a loop over steps (made in this cell's scope); pass as `wt`."""
        with tg.scope(self.name):
            return Transposed(self.U), Transposed(self.W)

    def forward(self, x: Tensor, h: Tensor, name: str = "h", wt: tuple | None = None) -> Tensor:
        """h(t) from x(t) (B, D) float or (B,) int ids, and h(t-1) (B, H)."""
        UT, WT = (Transposed(self.U), Transposed(self.W)) if wt is None else wt
        return tg.tanh(project(x, UT()) + h @ WT() + self.b).named(name)    # (B, H)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


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


class DynamicalSystem(Module):
    """The classical dynamical system of eq. 10.1, s(t) = f(s(t-1); theta), unfolded (fig. 10.1).

    With ``input_size > 0`` it is driven by an input, h(t) = f(h(t-1), x(t); theta)
    (eq. 10.4-10.5, fig. 10.2). Here f(s) = tanh(W s + b [+ U x]).

    Parameters
    ----------
    state_size : int
    input_size : int
        0 for the autonomous system (states named ``s``), > 0 for the driven one (named ``h``).
    rng : int or Generator, optional
    dtype : numpy dtype
    name : str, optional

    Examples
    --------
    >>> ds = DynamicalSystem(2, rng=0)
    >>> len(ds(np.zeros((1, 2)), steps=3))
    3
    """

    def __init__(self, state_size: int, input_size: int = 0, rng: Any = None,
                 dtype: Any = np.float64, name: str | None = None) -> None:
        super().__init__(name)
        r = make_rng(rng)
        self.state_size, self.input_size = state_size, input_size
        self.W = self.param("W", init_uniform(r, (state_size, state_size), state_size, dtype))
        self.b = self.param("b", init_uniform(r, (state_size,), state_size, dtype))
        if input_size:
            self.U = self.param("U", init_uniform(r, (state_size, input_size), state_size, dtype))

    def forward(self, state: Any = None, steps: int | None = None, x: Any = None,
                **old: Any) -> list[Tensor]:
        """Unfold the system: returns [s(1), ..., s(tau)], each (B, S).

        Parameters
        ----------
        state : array (B, S), optional
            s(0); zeros when omitted (then `x` gives the batch size). (``s0=`` is the
            deprecated name.)
        steps : int
            tau, for the autonomous system.
        x : array (B, tau, D) or ids (B, tau)
            The input sequence of the driven system (tau is its length).
        """
        state = legacy_state(self, state, old, "s0")
        if self.input_size:
            if x is None or steps is not None:
                raise ValueError(f"{who(self)}: a driven system (input_size="
                                 f"{self.input_size}) takes x and no steps; got "
                                 f"x={'None' if x is None else 'given'}, steps={steps}")
            seq = SequenceInput(self, x, self.input_size)
            B, T = seq.batch, seq.length
        else:
            if x is not None or steps is None or steps < 1:
                raise ValueError(f"{who(self)}: the autonomous system takes state and steps >= 1 "
                                 f"and no x; got steps={steps}, x={'None' if x is None else 'given'}")
            if state is None:
                raise ValueError(f"{who(self)}: the autonomous system needs state s(0) of shape "
                                 f"(B, {self.state_size})")
            seq, B, T = None, np.shape(getattr(state, "data", state))[0], steps
        name = "h" if seq is not None else "s"
        s0 = start_state(self, state, B, self.state_size, self.W.dtype, (name,))
        WT = Transposed(self.W)
        UT = Transposed(self.U) if seq is not None else None

        def step(t: int, s: Tensor, named: bool) -> Tensor:
            a = s @ WT() + self.b                                            # (B, S)
            if seq is not None:
                a = a + project(seq.at(t), UT())
            return tg.tanh(a).named(name)                                    # (B, S)
        return run(step, s0, range(1, T + 1), names=(name,)).states

    def extra_repr(self) -> str:
        return f"state_size={self.state_size}, input_size={self.input_size}"


class RNN(Recurrent):
    """Elman RNN with hidden-to-hidden recurrence (fig. 10.3, eq. 10.8-10.11).

    a(t) = b + W h(t-1) + U x(t);  h(t) = tanh(a(t));  o(t) = c + V h(t).
    With ``output="last"`` it has a single output at the end of the sequence (fig. 10.5), for
    summarising a sequence (classification).

    Parameters
    ----------
    input_size : int
        D; integer inputs are ids in [0, D), acting as one-hot x(t).
    hidden_size : int
        H.
    output_size : int, optional
        K; None for a network without outputs (only states).
    output : {"every", "last"}
    rng : int or Generator, optional
    dtype : numpy dtype
    name : str, optional

    Examples
    --------
    >>> rnn = RNN(5, 8, 5, rng=0)
    >>> out = rnn(np.array([[0, 3, 1]]))           # ids (B=1, T=3)
    >>> len(out.o), out.o[0].shape, out.h[-1].shape
    (3, (1, 5), (1, 8))
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int | None = None,
                 output: str = "every", rng: Any = None, dtype: Any = np.float64,
                 name: str | None = None) -> None:
        super().__init__(name)
        if output not in ("every", "last"):
            raise ValueError(f"RNN: output must be 'every' or 'last', got {output!r}")
        r = make_rng(rng)
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        self.output = output
        self.cell = RNNCell(input_size, hidden_size, rng=r, dtype=dtype)
        if output_size is not None:
            add_output(self, r, output_size, hidden_size, dtype)

    def forward(self, x: Any, state: Any = None, lengths: Any = None, **old: Any) -> RNNOutput:
        """Run over a batch of sequences.

        Parameters
        ----------
        x : array (B, tau, D) float, or int ids (B, tau)
        state : array (B, H), optional
            h(0); zeros by default (``h0=`` is the deprecated name). A Tensor (``out.state`` of
            an earlier chunk) is used as it is.
        lengths : int array (B,), optional
            True lengths of padded sequences: a state stops changing after its sequence ends,
            so ``h[-1]`` and the "last" output belong to each sequence's own last step.

        Returns
        -------
        RNNOutput
        """
        state = legacy_state(self, state, old, "h0")
        seq = SequenceInput(self, x, self.input_size)
        B, T = seq.batch, seq.length
        masks = length_masks(self, lengths, B, T)
        h0 = start_state(self, state, B, self.hidden_size, self.cell.W.dtype)
        wt = self.cell.transposes()
        VT = Transposed(self.V) if self.output_size is not None else None
        every = self.output == "every"
        r = run(lambda t, h, named: self.cell(seq.at(t), h, "h" if named else None, wt), h0,
                range(1, T + 1), masks,
                emit=None if VT is None else
                lambda t, h: self.readout(h, VT) if every or t == T else None)
        return RNNOutput(o=r.outputs, h=r.states, steps=r.steps, state=r.final)

    def step(self, x: Tensor, state: Tensor, wt: tuple | None = None) -> Tensor:
        """One step h(t) from x(t) and h(t-1) (call inside ``tg.step(t)`` and this scope)."""
        return self.cell(x, state, wt=wt)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, {self.output_size}, "
                f"output={self.output!r}")
