"""The dynamical system and the Elman RNN of ch. 10.1-10.2: the recurrence everything builds on.

Flow: model code calls `RNN(...)(x)` -> every step t runs inside ``tg.step(t)`` and the cell's
``tg.scope("cell")``, naming x(t), h(t), o(t) -> `sequence_loss` adds L(t) -> backward is BPTT.

A loop transposes each shared weight once, before its first step (the fast path); under
`tinygraph.nn.per_step_copies()` every step reads W itself, so after ``backward(keep_grads=True)``
the gradient of each step's copy W(t) is known (`tinygraph.nn.step_grads`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

import tinygraph as tg
from tinygraph.tensor import Tensor, apply

from .loop import (CellSequence, RNNOutput, SequenceInput, legacy_state,  # noqa: F401
                   length_masks, make_rng, per_step_mode, project, run, start_state)
from tinygraph.export import register_unfold
from tinygraph.tape import STATE, current_tape

from .fused import ElmanScan, ElmanUnfold
from .module import Module, Transposed, init_uniform, who

__all__ = ["RNNCell", "RNN", "RNNOutput", "DynamicalSystem", "SequenceInput", "length_masks",
           "make_rng"]


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

    state_names = ("h",)

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
                                 f"and no x; got steps={steps}, "
                                 f"x={'None' if x is None else 'given'}")
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


class RNN(CellSequence):
    """Elman RNN with hidden-to-hidden recurrence (fig. 10.3, eq. 10.8-10.11).

    a(t) = b + W h(t-1) + U x(t);  h(t) = tanh(a(t));  o(t) = c + V h(t).
    With ``output="last"`` it has a single output at the end of the sequence (fig. 10.5), for
    summarising a sequence (classification).

    Parameters
    ----------
    input_size, hidden_size, output_size, output, rng, dtype, name :
        D, H, K (None: states only), "every" or "last", seed, dtype, scope name; see
        `tinygraph.nn.loop.CellSequence`.

    Examples
    --------
    >>> rnn = RNN(5, 8, 5, rng=0)
    >>> out = rnn(np.array([[0, 3, 1]]))           # ids (B=1, T=3)
    >>> len(out.o), out.o[0].shape, out.h[-1].shape
    (3, (1, 5), (1, 8))
    """

    cell_class = RNNCell

    def __init__(self, input_size: int, hidden_size: int, output_size: int | None = None,
                 output: str = "every", rng: Any = None, dtype: Any = np.float64,
                 name: str | None = None, fused: bool = False) -> None:
        super().__init__(input_size, hidden_size, output_size, output, rng, dtype, name)
        self.fused = bool(fused)

    def forward(self, x: Any, state: Any = None, lengths: Any = None, **old: Any) -> RNNOutput:
        """Run over a batch of sequences; see `CellSequence.forward`.

        With ``fused=True`` (and no `lengths`, outside `per_step_copies`) the recurrence is
        one ``elman_scan`` op between batched input and output projections: the same numbers
        and gradients as the per-step recording, in fewer ops.
        """
        state = legacy_state(self, state, old, "h0")
        seq = SequenceInput(self, x, self.input_size)
        if not (self.fused and lengths is None and not per_step_mode() and not seq.tracked):
            return super().forward(x, state, lengths)
        B, T, H = seq.batch, seq.length, self.hidden_size
        h0 = start_state(self, state, B, H, self.cell.W.dtype)
        cell, tape = self.cell, current_tape()      # held: the group's ids are on this tape
        start = len(tape)
        with tg.scope(cell.name):
            UT = cell.U.T
            if seq.ids:
                xu = tg.embedding(UT, tg.tensor(seq.steps, name="x"))                # (T, B, H)
            else:
                xt = tg.tensor(seq.steps, name="x")                                  # (T, B, D)
                xu = (xt.reshape(T * B, self.input_size) @ UT).reshape(T, B, H)
            hs = apply(ElmanScan, (xu, cell.W, cell.b, h0))                          # (T, B, H)
        VT = self.V.T if self.output_size is not None else None
        out = RNNOutput(steps=[])
        O = None
        if VT is not None and self.output == "every":
            O = (hs.reshape(T * B, H) @ VT + self.c).reshape(T, B, self.output_size)
        with tg.scope(cell.name):                    # h(t) where the per-step run makes it
            for t in range(1, T + 1):
                with tg.step(t):
                    out.h.append(hs[t - 1].named("h"))                              # (B, H)
        if O is not None:
            for t in range(1, T + 1):
                with tg.step(t):
                    out.o.append(O[t - 1].named("o"))                               # (B, K)
            out.steps = list(range(1, T + 1))
        mo = []
        if VT is not None and self.output == "last":
            with tg.step(T):
                mo.append(out.h[-1] @ VT)
                out.o.append((mo[0] + self.c).named("o"))
                out.steps.append(T)
        out.state = out.h[-1]

        def node(v: Tensor) -> int | None:
            return v._idx if v._tape is tape else tape.leaves.get(id(v))
        ids = {"U": node(cell.U), "UT": node(UT), "W": node(cell.W), "b": node(cell.b),
               "h0": node(h0), "scan": node(hs), "D": self.input_size,
               "h": [node(h) for h in out.h], "o": [node(o) for o in out.o],
               "mo": [node(m) for m in mo]}
        if VT is not None:
            ids.update(V=node(self.V), VT=node(VT), c=node(self.c))
        register_unfold(tape, unfold := ElmanUnfold(
            start, len(tape), ids, seq.steps, hs.data, h0.data, cell.W.data,
            None if VT is None else self.V.data, self.output == "every",
            (tape.meta[ids["scan"]][3], STATE.scope), seq.ids,
            (tape.src.get(ids["scan"]), tape.code.get(ids["scan"]))))
        if hs.requires_grad:
            hs.register_hook(unfold.keep_hook(tape))
        return out
