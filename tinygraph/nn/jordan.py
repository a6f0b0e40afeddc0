"""The RNN with output-to-hidden recurrence (fig. 10.4), trained by teacher forcing (fig. 10.6).

Flow: `JordanRNN(...)(x, y0, y=targets)` records a graph in which the fed-back edge into h(t)
comes from the true y(t-1) (teacher forcing); ``mode="free"`` feeds the network's own greedy
output argmax o(t-1) instead, so the recorded edge comes from o. Steps are tagged t = 1..tau.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import tinygraph as tg
from tinygraph.tensor import Tensor

from .loop import SequenceInput, add_output, output, project, run
from .module import Module, Transposed, check_ids, init_uniform, who
from .rnn import RNNOutput, make_rng


class JordanRNN(Module):
    """RNN whose only recurrence goes from the output at t-1 to the hidden units at t.

    h(t) = tanh(b + W y(t-1) + U x(t));  o(t) = c + V h(t)  (fig. 10.4: the recurrent weights
    are W, as in the book, though they read the output rather than the hidden state).

    At training time the true output y(t-1) is fed back (teacher forcing, fig. 10.6): every step
    then depends only on data, and the gradient of each step can be computed in isolation. At
    test time the network runs free: the fed-back y(t-1) is its own greedy choice argmax o(t-1).

    Parameters
    ----------
    input_size : int
        D; 0 for a network without input x(t) (it then only generates). Integer inputs are ids.
    hidden_size : int
        H.
    output_size : int
        K, the number of output symbols; y(t) is fed back as one-hot, through W (H, K).
    rng : int or Generator, optional
    dtype : numpy dtype
    name : str, optional

    Examples
    --------
    >>> net = JordanRNN(2, 16, 8, rng=0)
    >>> out = net(np.array([[1, 0, 1]]), y0=np.array([3]), mode="free")
    >>> [t.shape for t in out.tokens]
    [(1,), (1,), (1,)]
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, rng: Any = None,
                 dtype: Any = np.float64, name: str | None = None) -> None:
        super().__init__(name)
        r = make_rng(rng)
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        H, K = hidden_size, output_size
        if input_size:
            self.U = self.param("U", init_uniform(r, (H, input_size), H, dtype))
        self.W = self.param("W", init_uniform(r, (H, K), H, dtype))
        self.b = self.param("b", init_uniform(r, (H,), H, dtype))
        add_output(self, r, K, H, dtype)

    def forward(self, x: Any = None, y0: Any = None, y: Any = None, mode: str = "teacher",
                steps: int | None = None) -> RNNOutput:
        """Run the network.

        Parameters
        ----------
        x : array (B, tau, D) or ids (B, tau), optional
            Inputs; omit when ``input_size == 0`` and give `steps`.
        y0 : int array (B,)
            y(0), the symbol fed back at t = 1.
        y : int array (B, tau), optional
            Targets, fed back at t + 1 in teacher-forcing mode (required there).
        mode : {"teacher", "free"}
        steps : int, optional
            tau when there is no input.

        Returns
        -------
        RNNOutput
            ``o`` and ``h`` per step; ``tokens`` holds argmax o(t) per step in free mode.
        """
        if mode not in ("teacher", "free"):
            raise ValueError(f"{who(self)}: mode must be 'teacher' or 'free', got {mode!r}")
        seq = None
        if self.input_size:
            if x is None:
                raise ValueError(f"{who(self)}: expected an input x of shape (B, tau, "
                                 f"{self.input_size}) or ids (B, tau), got None")
            seq = SequenceInput(self, x, self.input_size)
            B, T = seq.batch, seq.length
        else:
            if x is not None or steps is None or steps < 1:
                raise ValueError(f"{who(self)}: a network without input takes steps >= 1 and no "
                                 f"x; got steps={steps}")
            B, T = None, steps
        if y0 is None:
            raise ValueError(f"{who(self)}: expected y0, the first fed-back symbol, as ints (B,)")
        y0 = check_ids(self, y0, self.output_size, ndim=1, what="y0")
        B = len(y0) if B is None else B
        if len(y0) != B:
            raise ValueError(f"{who(self)}: y0 has {len(y0)} entries, expected B = {B}")
        if mode == "teacher":
            if y is None:
                raise ValueError(f"{who(self)}: teacher forcing needs the targets y (B, {T})")
            y = check_ids(self, y, self.output_size, ndim=2, what="targets y")
            if y.shape != (B, T):
                raise ValueError(f"{who(self)}: expected targets y of shape ({B}, {T}), got "
                                 f"{y.shape}")
        out = RNNOutput()
        WT, VT = Transposed(self.W), Transposed(self.V)
        UT = Transposed(self.U) if seq is not None else None
        with tg.step(0):
            fed: Tensor = tg.tensor(y0, name="y")                 # y(0), ids (B,)

        def step(t: int, fed: Tensor, _named: bool) -> Tensor:
            """h(t), o(t) from y(t-1); returns the symbol fed back at t + 1."""
            a = tg.embedding(WT(), fed) + self.b                      # (B, H): W one_hot(y(t-1))
            if seq is not None:
                a = a + project(seq.at(t), UT())
            h = tg.tanh(a).named("h")                                 # (B, H)
            o = output(self, h, VT)                                   # (B, K)
            out.h.append(h), out.o.append(o), out.steps.append(t)
            if mode == "free":
                out.tokens.append(tg.argmax(o, axis=-1))              # own output, fed at t+1
                return out.tokens[-1]
            return tg.tensor(y[:, t - 1], name="y") if t < T else fed  # the true y(t)
        run(step, fed, range(1, T + 1))
        return out

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, {self.output_size}"
