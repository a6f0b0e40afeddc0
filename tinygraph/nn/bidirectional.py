"""The bidirectional RNN (fig. 10.11): a forward chain h(t), a backward chain g(t), outputs from both.

Flow: `BidirectionalRNN(...)(x)` runs the forward cell (scope ``fwd``) for t = 1..tau, then the
backward cell (scope ``bwd``) for t = tau..1, each step inside ``tg.step(t)``; o(t) reads h(t)
and g(t). States are named ``h`` and ``g`` as in the book.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import tinygraph as tg

from .module import Module, Transposed, init_uniform, initial_state
from .rnn import RNNCell, RNNOutput, SequenceInput, length_masks, make_rng


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
        self.V = self.param("V", init_uniform(r, (output_size, 2 * hidden_size), 2 * hidden_size,
                                              dtype))
        self.c = self.param("c", init_uniform(r, (output_size,), 2 * hidden_size, dtype))

    def forward(self, x: Any, h0: Any = None, g0: Any = None, lengths: Any = None
                ) -> "BiOutput":
        """Run both chains over a batch of sequences.

        Parameters
        ----------
        x : array (B, tau, D) float or int ids (B, tau)
        h0, g0 : array (B, H), optional
            h(0) and g(tau + 1); zeros by default.
        lengths : int array (B,), optional
            True lengths of padded sequences: the backward chain of sequence b starts at its
            own last step, and the forward chain stops changing after it.

        Returns
        -------
        BiOutput
            ``o``, ``h`` (forward states) and ``g`` (backward states), in order t = 1..tau.
        """
        seq = SequenceInput(self, x, self.input_size)
        B, T, H = seq.batch, seq.length, self.hidden_size
        masks = length_masks(self, lengths, B, T)
        xs = {}
        h = initial_state(self, h0, B, H, self.V.dtype)
        wt_h, wt_g = self.fwd.transposes(), self.bwd.transposes()
        # with padding, h and g name the states after the mask
        hname, gname = ("h", "g") if masks is None else (None, None)
        hs = []
        for t in range(1, T + 1):
            with tg.step(t):
                xs[t] = seq.at(t)
                h_new = self.fwd(xs[t], h, name=hname, wt=wt_h)                      # (B, H)
                h = h_new if masks is None else tg.where(masks[t - 1], h_new, h).named("h")
                hs.append(h)
        g = initial_state(self, g0, B, H, self.V.dtype, "g", T + 1, "g0")      # g(tau + 1)
        gs = [None] * T
        for t in range(T, 0, -1):
            with tg.step(t):
                g_new = self.bwd(xs[t], g, name=gname, wt=wt_g)            # (B, H)
                g = g_new if masks is None else tg.where(masks[t - 1], g_new, g).named("g")
                gs[t - 1] = g
        out = BiOutput(h=hs, g=gs)
        VT = Transposed(self.V)
        for t in range(1, T + 1):
            with tg.step(t):
                hg = tg.concat([hs[t - 1], gs[t - 1]], axis=1)          # (B, 2H)
                out.o.append((hg @ VT() + self.c).named("o"))            # (B, K)
                out.steps.append(t)
        return out

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, {self.output_size}"


class BiOutput(RNNOutput):
    """`RNNOutput` plus the backward states ``g`` (g[t-1] is g(t))."""

    def __init__(self, h: list, g: list) -> None:
        super().__init__(o=[], h=h, steps=[])
        self.g = g
