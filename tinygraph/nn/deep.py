"""Deep recurrent networks, the three forms of fig. 10.13.

Flow: `DeepRNN(..., kind=...)(x)` runs, at each step t inside ``tg.step(t)``:
``stacked`` - layers ``layer1`` .. ``layerN``, each an Elman cell fed by the layer below;
``deep_transition`` - one cell whose h(t-1) -> h(t) map is an MLP with an intermediate layer z(t);
``skip`` - that deep transition plus a shortcut from h(t-1) to h(t) (parameter ``Ws``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

import tinygraph as tg
from tinygraph.tensor import Tensor

from .loop import Recurrent, SequenceInput, add_output, output, project, run, start_state
from .module import Module, Transposed, init_uniform, who
from .rnn import RNNCell, RNNOutput, make_rng

KINDS = ("stacked", "deep_transition", "skip")


class DeepTransitionCell(Module):
    """A deep transition (fig. 10.13 b), optionally with skip connections (fig. 10.13 c).

    z(t) = tanh(b + W h(t-1) + U x(t))
    h(t) = tanh(b2 + W2 z(t) [+ Ws h(t-1)])

    The MLP adds a nonlinear layer between h(t-1) and h(t); the shortcut Ws shortens the path
    the gradient travels from h(t) back to h(t-1).

    Parameters
    ----------
    input_size, hidden_size : int
    skip : bool
    rng, dtype, name : see `RNN`.
    """

    def __init__(self, input_size: int, hidden_size: int, skip: bool = False, rng: Any = None,
                 dtype: Any = np.float64, name: str | None = None) -> None:
        super().__init__(name)
        r = make_rng(rng)
        H = hidden_size
        self.input_size, self.hidden_size, self.skip = input_size, H, skip
        self.U = self.param("U", init_uniform(r, (H, input_size), H, dtype))
        self.W = self.param("W", init_uniform(r, (H, H), H, dtype))
        self.b = self.param("b", init_uniform(r, (H,), H, dtype))
        self.W2 = self.param("W2", init_uniform(r, (H, H), H, dtype))
        self.b2 = self.param("b2", init_uniform(r, (H,), H, dtype))
        if skip:
            self.Ws = self.param("Ws", init_uniform(r, (H, H), H, dtype))

    def transposes(self) -> tuple:
        """U^T, W^T, W2^T (and Ws^T) for a loop over steps; pass as `wt`."""
        with tg.scope(self.name):
            return self._transposes()

    def _transposes(self) -> tuple:
        return tuple(Transposed(p) for p in
                     (self.U, self.W, self.W2) + ((self.Ws,) if self.skip else ()))

    def forward(self, x: Tensor, h: Tensor, name: str = "h", wt: tuple | None = None) -> Tensor:
        """h(t) from x(t) (B, D) or ids (B,), and h(t-1) (B, H)."""
        UT, WT, W2T, *skip = self._transposes() if wt is None else wt
        z = tg.tanh(project(x, UT()) + h @ WT() + self.b).named("z")                      # (B, H)
        a = z @ W2T() + self.b2
        if self.skip:
            a = a + h @ skip[0]()                                           # the shortcut
        return tg.tanh(a).named(name)                                       # (B, H)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, skip={self.skip}"


class DeepRNN(Recurrent):
    """Deep RNN of fig. 10.13, in one of three forms.

    Parameters
    ----------
    input_size : int
        D; integer inputs are ids in [0, D).
    hidden_size : int
        H (every layer).
    output_size : int, optional
        K; o(t) = c + V h_top(t) at every step. None for states only.
    kind : {"stacked", "deep_transition", "skip"}
        (a) a stack of recurrent layers; (b) an MLP transition; (c) the MLP with shortcuts.
    num_layers : int
        Layers of the stack (``stacked`` only).
    rng, dtype, name : see `RNN`.

    Examples
    --------
    >>> net = DeepRNN(5, 8, 5, kind="skip", rng=0)
    >>> out = net(np.array([[0, 1, 2]]))
    >>> len(out.o), out.h[-1].shape
    (3, (1, 8))
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int | None = None,
                 kind: str = "stacked", num_layers: int = 2, rng: Any = None,
                 dtype: Any = np.float64, name: str | None = None) -> None:
        super().__init__(name)
        if kind not in KINDS:
            raise ValueError(f"DeepRNN: kind must be one of {KINDS}, got {kind!r}")
        if kind == "stacked" and num_layers < 1:
            raise ValueError(f"DeepRNN: num_layers must be >= 1, got {num_layers}")
        r = make_rng(rng)
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        self.kind = kind
        self.num_layers = num_layers if kind == "stacked" else 1
        if kind == "stacked":
            self.layers = [self.add_module(f"layer{i + 1}",
                                           RNNCell(input_size if i == 0 else hidden_size,
                                                   hidden_size, rng=r, dtype=dtype))
                           for i in range(num_layers)]
        else:
            self.layers = [self.add_module("cell", DeepTransitionCell(
                input_size, hidden_size, skip=kind == "skip", rng=r, dtype=dtype))]
        if output_size is not None:
            add_output(self, r, output_size, hidden_size, dtype)

    def initial_state(self, batch: int) -> list[Tensor]:
        """Zero states, one (B, H) per layer."""
        return [start_state(self, None, batch, self.hidden_size, self.layers[0].W.dtype)
                for _ in self.layers]

    def step(self, x_t: Tensor, state: list[Tensor], wts: list | None = None) -> list[Tensor]:
        """One time step through every layer (call inside ``tg.step(t)`` and this scope).

        `wts`: the layers' `transposes()`, made once before the loop (default: made here).
        """
        new, inp = [], x_t
        wts = [None] * len(self.layers) if wts is None else wts
        for layer, h, wt in zip(self.layers, state, wts):
            inp = layer(inp, h, wt=wt)                                      # (B, H)
            new.append(inp)
        return new

    def forward(self, x: Any, state: list | None = None) -> RNNOutput:
        """Run over a batch of sequences x (B, tau, D) or ids (B, tau).

        Parameters
        ----------
        x : array
        state : list of arrays (B, H), optional
            h(0) of each layer; zeros by default. Tensors (``out.state`` of an earlier chunk)
            are used as they are.

        Returns
        -------
        RNNOutput
            ``h`` holds the top layer's states; ``state`` the final state of every layer, to
            carry into the next chunk (``states`` is its older name).
        """
        seq = SequenceInput(self, x, self.input_size)
        B, T = seq.batch, seq.length
        if state is None:
            state = self.initial_state(B)
        else:
            if len(state) != len(self.layers):
                raise ValueError(f"{who(self)}: expected {len(self.layers)} initial states, got "
                                 f"{len(state)}")
            state = [start_state(self, s, B, self.hidden_size, self.layers[0].W.dtype)
                     for s in state]
        wts = [layer.transposes() for layer in self.layers]
        VT = Transposed(self.V) if self.output_size is not None else None
        r = run(lambda t, state, _named: self.step(seq.at(t), state, wts), state,
                range(1, T + 1), names=("h",) * len(self.layers),
                emit=None if VT is None else lambda t, state: output(self, state[-1], VT))
        out = RNNOutput(o=r.outputs, h=[s[-1] for s in r.states], steps=r.steps, state=r.final)
        out.states = r.final                # the older name of `state`
        return out

    @staticmethod
    def top(state: list) -> Tensor:
        """The tensor the output layer reads from a state: the top layer's h(t)."""
        return state[-1]

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, {self.output_size}, kind={self.kind!r}, "
                f"num_layers={self.num_layers}")
