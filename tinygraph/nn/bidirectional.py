"""The bidirectional RNN (fig. 10.11): a forward chain h(t), a backward chain g(t), outputs from both.

Flow: `BidirectionalRNN(...)(x)` runs the forward cell (scope ``fwd``) for t = 1..tau, then the
backward cell (scope ``bwd``) for t = tau..1, each step inside ``tg.step(t)``; o(t) reads h(t)
and g(t). States are named ``h`` and ``g`` as in the book.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import tinygraph as tg

from tinygraph.tensor import Tensor

from .loop import SequenceInput, add_output, legacy_state, length_masks, output, run, start_state
from .module import Module, Transposed
from .rnn import RNNCell, RNNOutput, make_rng


class BidirectionalRNN(Module):
    """Bidirectional RNN (fig. 10.11).

    h(t) = tanh(b + W h(t-1) + U x(t))            (forward, t = 1..tau)
    g(t) = tanh(b' + W' g(t+1) + U' x(t))         (backward, t = tau..1)
    o(t) = c + V [h(t); g(t)]

    o(t) thus summarises the past (h) and the future (g) around position t.

    Parameters
    ----------
    input_size : int
        D; integer inputs are ids in [0, D).
    hidden_size : int
        H, for each direction.
    output_size : int
        K.
    rng : int or Generator, optional
    dtype : numpy dtype
    name : str, optional

    Examples
    --------
    >>> net = BidirectionalRNN(6, 8, 6, rng=0)
    >>> out = net(np.array([[1, 2, 3, 4]]))
    >>> len(out.o), len(out.g), out.o[0].shape
    (4, 4, (1, 6))
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, rng: Any = None,
                 dtype: Any = np.float64, name: str | None = None) -> None:
        super().__init__(name or "birnn")
        r = make_rng(rng)
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        self.fwd = RNNCell(input_size, hidden_size, rng=r, dtype=dtype)
        self.bwd = RNNCell(input_size, hidden_size, rng=r, dtype=dtype)
        add_output(self, r, output_size, 2 * hidden_size, dtype)

    def forward(self, x: Any, state: Any = None, lengths: Any = None, **old: Any) -> "BiOutput":
        """Run both chains over a batch of sequences.

        Parameters
        ----------
        x : array (B, tau, D) float or int ids (B, tau)
        state : tuple (h0, g0) of arrays (B, H) or None, optional
            h(0) and g(tau + 1); zeros by default (``h0=``, ``g0=`` are the deprecated names).
        lengths : int array (B,), optional
            True lengths of padded sequences: the backward chain of sequence b starts at its
            own last step, and the forward chain stops changing after it.

        Returns
        -------
        BiOutput
            ``o``, ``h`` (forward states) and ``g`` (backward states), in order t = 1..tau;
            ``state`` is (h(tau), g(1)).
        """
        state = legacy_state(self, state, old, "h0", "g0")
        h0, g0 = (None, None) if state is None else state
        seq = SequenceInput(self, x, self.input_size)
        B, T, H = seq.batch, seq.length, self.hidden_size
        masks = length_masks(self, lengths, B, T)
        xs = {}
        h = start_state(self, h0, B, H, self.V.dtype)
        wt_h, wt_g = self.fwd.transposes(), self.bwd.transposes()

        def forward_step(t: int, h: Tensor, named: bool) -> Tensor:
            xs[t] = seq.at(t)
            return self.fwd(xs[t], h, "h" if named else None, wt_h)                # (B, H)
        hs = run(forward_step, h, range(1, T + 1), masks).states
        g = start_state(self, g0, B, H, self.V.dtype, ("g",), T + 1)            # g(tau + 1)
        gs = run(lambda t, g, named: self.bwd(xs[t], g, "g" if named else None, wt_g), g,
                 range(T, 0, -1), masks, names=("g",)).states[::-1]             # (B, H) each
        out = BiOutput(h=hs, g=gs)
        out.state = (hs[-1], gs[0])
        VT = Transposed(self.V)
        for t in range(1, T + 1):                # o(t) reads both chains: after both ran
            with tg.step(t):
                hg = tg.concat([hs[t - 1], gs[t - 1]], axis=1)                  # (B, 2H)
                out.o.append(output(self, hg, VT))                              # (B, K)
                out.steps.append(t)
        return out

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, {self.output_size}"


class BiOutput(RNNOutput):
    """`RNNOutput` plus the backward states ``g`` (g[t-1] is g(t))."""

    def __init__(self, h: list, g: list) -> None:
        super().__init__(o=[], h=h, steps=[])
        self.g = g
