"""The equations of torch's fused recurrent cells, as the adapter draws them step by step.

Flow: tinygraph.adapters.torch meets a fused ``rnn_tanh_cell`` / ``lstm_cell`` / ``gru_cell``
(or a whole ``nn.LSTM`` loop) -> **torch_cells** makes its shadow nodes: one node per op of
the cell's equations, whose values and gradients are recomputed when the graph is built.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F


def cell_equations(v: Callable, kind: str, x: int, state: tuple, U: int, W: int,
                   bi: int | None, bh: int | None, st: tuple | None, hname: str | None,
                   cname: str | None) -> tuple:
    """Shadow nodes of one step of a cell, made with `v(op, inputs, fn, name, step)`.

    `x`, `state` ((h,) or (h, c)), `U`, `W`, `bi`, `bh` are node ids; returns (h,) or (h, c).
    The equations are torch's (docs of nn.RNNCell / LSTMCell / GRUCell): gates i f g o and
    r z n, named as `tinygraph.nn` names them.
    """

    def proj(a: int, w: int, b: int | None) -> int:
        m = v("matmul", (a, w), lambda a, w: F.linear(a, w), step=st)
        return m if b is None else v("add", (m, b), torch.add, step=st)

    px, ph = proj(x, U, bi), proj(state[0], W, bh)
    if kind in ("tanh", "relu"):
        a = v("add", (px, ph), torch.add, step=st)
        return (v(kind, (a,), torch.tanh if kind == "tanh" else torch.relu, hname, st),)
    if kind == "lstm":
        gates = v("add", (px, ph), torch.add, step=st)
        i, f, g, o = (v("split", (gates,), chunk(4, k), step=st) for k in range(4))
        i = v("sigmoid", (i,), torch.sigmoid, "i", st)
        f = v("sigmoid", (f,), torch.sigmoid, "f", st)
        g = v("tanh", (g,), torch.tanh, "g", st)
        o = v("sigmoid", (o,), torch.sigmoid, "o", st)
        fc = v("mul", (f, state[1]), torch.mul, step=st)
        ig = v("mul", (i, g), torch.mul, step=st)
        c = v("add", (fc, ig), torch.add, cname, st)
        tc = v("tanh", (c,), torch.tanh, step=st)
        return v("mul", (o, tc), torch.mul, hname, st), c
    xr, xz, xn = (v("split", (px,), chunk(3, k), step=st) for k in range(3))
    hr, hz, hn = (v("split", (ph,), chunk(3, k), step=st) for k in range(3))
    r = v("sigmoid", (v("add", (xr, hr), torch.add, step=st),), torch.sigmoid, "r", st)
    z = v("sigmoid", (v("add", (xz, hz), torch.add, step=st),), torch.sigmoid, "z", st)
    rh = v("mul", (r, hn), torch.mul, step=st)
    n = v("tanh", (v("add", (xn, rh), torch.add, step=st),), torch.tanh, "n", st)
    keep = v("rsub", (z,), lambda z: 1 - z, step=st)
    a = v("mul", (keep, n), torch.mul, step=st)
    b = v("mul", (z, state[0]), torch.mul, step=st)
    return (v("add", (a, b), torch.add, hname, st),)


def is_cell(module: Any) -> bool:
    return isinstance(module, torch.nn.RNNCellBase) or type(module).__name__.endswith("Cell")


def chunk(parts: int, k: int) -> Callable:
    return lambda a: a.chunk(parts, 1)[k]


def select(axis: int, t: int) -> Callable:
    return lambda a: a.select(axis, t)


def const(value: Any) -> Callable:
    value = value.detach()
    return lambda: value


def stack(axis: int) -> Callable:
    return lambda *xs: torch.stack(xs, axis)


def cat(a: Any, b: Any) -> Any:
    return torch.cat([a, b], -1)
