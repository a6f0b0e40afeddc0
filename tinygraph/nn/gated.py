"""Gated recurrent cells, LSTM and GRU, in PyTorch's equations and parameter layout.

Flow: `LSTM(...)(x)` / `GRU(...)(x)` run their cell over time through the shared loop
(`tinygraph.nn.loop`): each step inside ``tg.step(t)`` and the cell's scope, the gates named as
the literature names them (LSTM: i, f, g, o and the cell state c; GRU: r, z and the candidate
n), the carried states ``h`` (and ``c``) named so the views draw h's loop and c's loop apart.

The parameters are PyTorch's: ``weight_ih`` (G*H, D), ``weight_hh`` (G*H, H), ``bias_ih`` and
``bias_hh`` (G*H,), the G gate blocks stacked in PyTorch's order (LSTM i, f, g, o; GRU r, z, n).
A state dict of ``torch.nn.LSTMCell`` / ``GRUCell`` loads into the cells as it is, one of a
one-layer ``torch.nn.LSTM`` / ``GRU`` (``weight_ih_l0``, ...) into the sequence modules; torch
tensors are read through ``.detach().cpu().numpy()`` (torch itself is never imported). In graph
views the weights are labelled U (input to hidden) and W (hidden to hidden), as in the book.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import tinygraph as tg
from tinygraph.tensor import Tensor

from .loop import CellSequence, make_rng, project
from .module import Module, Transposed, init_uniform

# parameter key -> label in graph views
_LABELS = {"weight_ih": "U", "weight_hh": "W", "bias_ih": "b_ih", "bias_hh": "b_hh"}


def _numpy(v: Any) -> np.ndarray:
    """A numpy array from an array or a torch tensor (duck-typed: torch is not imported)."""
    if hasattr(v, "detach") and hasattr(v, "cpu"):
        v = v.detach().cpu().numpy()
    return np.asarray(v)


class _TorchLayout(Module):
    """Loads state dicts with PyTorch's keys and values (`torch_keys` maps torch's names)."""

    torch_keys: dict = {}

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copy values from `state` (own keys or PyTorch's, numpy arrays or torch tensors).

        Raises
        ------
        KeyError, ValueError
            As `Module.load_state_dict`: missing / unexpected keys, or a shape that differs.
        """
        own = {self.torch_keys.get(k, k): _numpy(v) for k, v in state.items()}
        super().load_state_dict(own, strict=strict)


class _GatedCell(_TorchLayout):
    """Shared parameters and checks of the gated cells (G gate blocks of H rows each)."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, rng: Any = None,
                 dtype: Any = np.float64, name: str | None = None) -> None:
        super().__init__(name)
        r = make_rng(rng)
        self.input_size, self.hidden_size = input_size, hidden_size
        G, H = self.gates * hidden_size, hidden_size       # PyTorch: U(-1/sqrt(H), 1/sqrt(H))
        for key, shape in (("weight_ih", (G, input_size)), ("weight_hh", (G, H)),
                           ("bias_ih", (G,)), ("bias_hh", (G,))):
            self.param(key, init_uniform(r, shape, H, dtype), _LABELS[key])

    def transposes(self) -> tuple[Transposed, Transposed]:
        """U^T and W^T for a loop over steps (made in this cell's scope); pass as `wt`."""
        with tg.scope(self.name):
            return Transposed(self.weight_ih), Transposed(self.weight_hh)

    def _projections(self, x: Tensor, h: Tensor, wt: tuple | None) -> tuple[Tensor, Tensor]:
        """(U x(t) + b_ih, W h(t-1) + b_hh), each (B, G*H)."""
        UT, WT = (Transposed(self.weight_ih), Transposed(self.weight_hh)) if wt is None else wt
        return project(x, UT()) + self.bias_ih, h @ WT() + self.bias_hh

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


class LSTMCell(_GatedCell):
    """One step of the long short-term memory (Hochreiter & Schmidhuber, 1997), as PyTorch's.

    i = sigmoid(U_i x + b_ii + W_i h + b_hi)       input gate
    f = sigmoid(U_f x + b_if + W_f h + b_hf)       forget gate
    g = tanh(U_g x + b_ig + W_g h + b_hg)          candidate (c~)
    o = sigmoid(U_o x + b_io + W_o h + b_ho)       output gate
    c(t) = f * c(t-1) + i * g;   h(t) = o * tanh(c(t))

    The cell state c carries information along its own loop, changed only by the gates'
    products, which is how gradients survive many steps.

    Parameters
    ----------
    input_size, hidden_size : int
        D and H. Integer inputs are ids in [0, D) (U's column, as a one-hot x).
    rng : int or Generator, optional
    dtype : numpy dtype
    name : str, optional

    Examples
    --------
    >>> cell = LSTMCell(3, 4, rng=0)
    >>> h, c = cell(tg.zeros(2, 3), (tg.zeros(2, 4), tg.zeros(2, 4)))
    >>> h.shape, c.shape, [k for k, _ in cell.named_parameters()]
    ((2, 4), (2, 4), ['weight_ih', 'weight_hh', 'bias_ih', 'bias_hh'])
    """

    gates = 4
    state_names = ("h", "c")

    def forward(self, x: Tensor, state: tuple, name: tuple | None = ("h", "c"),
                wt: tuple | None = None) -> tuple[Tensor, Tensor]:
        """(h(t), c(t)) from x(t) (B, D) or ids (B,) and (h(t-1), c(t-1)), each (B, H)."""
        h, c = state
        xi, hh = self._projections(x, h, wt)
        a = tg.split(xi + hh, self.hidden_size, axis=1)                     # 4 x (B, H)
        i = tg.sigmoid(a[0]).named("i")
        f = tg.sigmoid(a[1]).named("f")
        g = tg.tanh(a[2]).named("g")
        o = tg.sigmoid(a[3]).named("o")
        hn, cn = (None, None) if name is None else name
        c = (f * c + i * g).named(cn)                                       # (B, H)
        return (o * tg.tanh(c)).named(hn), c                               # (B, H)


class GRUCell(_GatedCell):
    """One step of the gated recurrent unit (Cho et al., 2014), as PyTorch's.

    r = sigmoid(U_r x + b_ir + W_r h + b_hr)       reset gate
    z = sigmoid(U_z x + b_iz + W_z h + b_hz)       update gate
    n = tanh(U_n x + b_in + r * (W_n h + b_hn))    candidate
    h(t) = (1 - z) * n + z * h(t-1)

    Parameters
    ----------
    input_size, hidden_size : int
    rng, dtype, name : see `LSTMCell`.

    Examples
    --------
    >>> GRUCell(3, 4, rng=0)(tg.zeros(2, 3), tg.zeros(2, 4)).shape
    (2, 4)
    """

    gates = 3
    state_names = ("h",)

    def forward(self, x: Tensor, h: Tensor, name: str | None = "h",
                wt: tuple | None = None) -> Tensor:
        """h(t) from x(t) (B, D) or ids (B,) and h(t-1) (B, H)."""
        xi, hh = self._projections(x, h, wt)
        xr, xz, xn = tg.split(xi, self.hidden_size, axis=1)                 # 3 x (B, H)
        hr, hz, hn = tg.split(hh, self.hidden_size, axis=1)
        r = tg.sigmoid(xr + hr).named("r")
        z = tg.sigmoid(xz + hz).named("z")
        n = tg.tanh(xn + r * hn).named("n")
        return ((1.0 - z) * n + z * h).named(name)                          # (B, H)


def _torch_keys(cls_keys: tuple) -> dict:
    """One-layer ``torch.nn.LSTM`` / ``GRU`` keys (``weight_ih_l0``) -> ``cell.weight_ih``."""
    return {f"{k}_l0": f"cell.{k}" for k in cls_keys}


class LSTM(_TorchLayout, CellSequence):
    """LSTM over a batch of sequences (one layer, batch first), with an optional output layer.

    The sequence module of `LSTMCell`: the same call, outputs and padding as `RNN`; the state
    is the pair (h, c). Without `output_size` it is ``torch.nn.LSTM(D, H, batch_first=True)``
    and loads its state dict.

    Parameters
    ----------
    input_size, hidden_size, output_size, output, rng, dtype, name :
        D, H, K (o(t) = c + V h(t); None: states only), "every" or "last", seed, dtype,
        scope name; see `tinygraph.nn.loop.CellSequence`.

    Examples
    --------
    >>> lstm = LSTM(5, 8, 5, rng=0)
    >>> out = lstm(np.array([[0, 3, 1]]))           # ids (B=1, T=3)
    >>> len(out.o), len(out.c), [s.shape for s in out.state]
    (3, 3, [(1, 8), (1, 8)])
    """

    cell_class = LSTMCell
    torch_keys = _torch_keys(tuple(_LABELS))

    @staticmethod
    def top(state: tuple) -> Tensor:
        """The tensor the output layer reads from a state (h, c): h(t)."""
        return state[0]


class GRU(_TorchLayout, CellSequence):
    """GRU over a batch of sequences (one layer, batch first), with an optional output layer.

    The sequence module of `GRUCell`, as `LSTM` is of `LSTMCell`; the state is h. Without
    `output_size` it is ``torch.nn.GRU(D, H, batch_first=True)`` and loads its state dict.

    Parameters
    ----------
    input_size, hidden_size, output_size, output, rng, dtype, name : see `LSTM`.

    Examples
    --------
    >>> out = GRU(5, 8, 5, rng=0)(np.array([[0, 3, 1]]))
    >>> len(out.o), out.state.shape
    (3, (1, 8))
    """

    cell_class = GRUCell
    torch_keys = _torch_keys(tuple(_LABELS))
