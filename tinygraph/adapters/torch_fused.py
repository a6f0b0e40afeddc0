"""The PyTorch adapter's fused calls: a cell (``nn.RNNCell``/``LSTMCell``/``GRUCell``) or a
sequence module (``nn.RNN``/``LSTM``/``GRU``) recorded as its equations, step by step.

Flow: `torch.Recording` sees a fused call -> **these methods** add shadow nodes for the
equations (values recomputed, and for a sequence module checked against torch's output, when
the graph is built) -> `torch_graph` exports them. A mixin of `Recording`: it uses the
recording's nodes (``_virtual``, ``_node_of``, ``_bind``).
"""
from __future__ import annotations

import contextlib
from typing import Any

import torch

import tinygraph
from tinygraph import tape as _tape

from . import torch_calls as calls
from . import torch_cells as cells


class FusedCalls:
    """Fused cells and sequence modules, drawn as their equations (mixin of Recording)."""

    # -- fused cells and sequence modules: drawn as their equations ----------------------------
    def _cell(self, func: Any, args: tuple, kwargs: dict, kind: str) -> Any:
        out = func(*args, **kwargs)  # torch's own fused computation: its numbers are untouched
        x, hx, w_ih, w_hh = args[0], args[1], args[2], args[3]
        b_ih = args[4] if len(args) > 4 else kwargs.get("b_ih")
        b_hh = args[5] if len(args) > 5 else kwargs.get("b_hh")
        node = self._node_of
        state = tuple(node(t) for t in hx) if kind == "lstm" else (node(hx),)
        res = cells.cell_equations(self._virtual, kind, node(x), state, node(w_ih), node(w_hh),
                                   None if b_ih is None else node(b_ih),
                                   None if b_hh is None else node(b_hh), None, None, None)
        outs = out if kind == "lstm" else (out,)  # named h (and c) as the cell module's output
        for n, t in zip(res, outs):
            self._bind(n, t)
        return out

    def _fused_call(self, func: Any, args: tuple, kwargs: dict, fname: str) -> Any:
        """nn.RNN / LSTM / GRU: torch runs fused; the graph gets the equivalent cell loop.

        Returns NotImplemented (then the call is recorded as one node) for what the cell loop
        cannot re-run: packed sequences, dropout between layers, LSTM projections.
        """
        kind = calls.FUSED[fname]
        what = f"nn.{ {'tanh': 'RNN', 'relu': 'RNN', 'lstm': 'LSTM', 'gru': 'GRU'}[kind]}"
        where = _tape.STATE.scope or "top level"
        why = None
        if kwargs or len(args) != 9 or (isinstance(args[1], torch.Tensor)
                                        and not args[1].is_floating_point()):
            why = "packed sequence"
        else:
            inp, hx, params, has_b, layers, p, train, bidir, bfirst = args
            if p and train:
                why = "dropout between layers"
            elif len(params) != (4 if has_b else 2) * layers * (2 if bidir else 1):
                why = "projections (proj_size)"
        if why is not None:
            self.notes.append(f"{what} at {where}: {why}, drawn as one node")
            return NotImplemented
        out = func(*args, **kwargs)  # torch's own fused computation: its numbers are untouched
        T, tax = inp.shape[1 if bfirst else 0], 1 if bfirst else 0
        mod = self._stack[-1][1] if self._stack else None
        s0 = _tape.STATE.step
        offset = self._fused_steps.get(id(mod), 0)
        self._fused_steps[id(mod)] = offset + T  # a module called again continues the steps
        if s0 is not None:
            self._explicit = True
        at = [((s0 + t if s0 is not None else offset + t + 1), True) for t in range(-1, T + 1)]
        v = self._virtual
        if self._tracked(inp):
            X = self._node_of(inp)
            seq = [v("getitem", (X,), cells.select(tax, t), "x", at[t + 1]) for t in range(T)]
        else:  # an untracked input: x(t) are leaves, as tinygraph.nn makes them
            seq = [v("leaf", (), cells.const(inp.select(tax, t)), "x", at[t + 1], kind="input")
                   for t in range(T)]
        hxs = tuple(hx) if kind == "lstm" else (hx,)
        finals: list[list] = [[] for _ in hxs]
        per = 4 if has_b else 2
        for layer in range(layers):
            with contextlib.ExitStack() as stack:
                if layers > 1:
                    stack.enter_context(tinygraph.scope(f"layer{layer + 1}"))
                outs = []
                for d in range(2 if bidir else 1):
                    with contextlib.ExitStack() as inner:
                        if bidir:
                            inner.enter_context(tinygraph.scope("bwd" if d else "fwd"))
                        idx = layer * (2 if bidir else 1) + d
                        hs, last = self._fused_direction(kind, seq, hxs, idx,
                                                         params[idx * per:(idx + 1) * per],
                                                         has_b, d == 1, at)
                    outs.append(hs)
                    for j, f in enumerate(finals):
                        f.append(last[j])
                seq = outs[0] if not bidir else [
                    v("concat", (outs[0][t], outs[1][t]), cells.cat, step=at[t + 1])
                    for t in range(T)]
        res = [v("stack", tuple(seq), cells.stack(tax), step=(None, True))]
        res += [v("stack", tuple(f), cells.stack(0), step=(None, True)) for f in finals]
        self._parts[res[0]] = (tax, seq)  # out[:, t] is h(t); h_n[k] is layer k's last state
        for n, f in zip(res[1:], finals):
            self._parts[n] = (0, f)
        flat = list(out)  # (output, h_n) or, for an LSTM, (output, h_n, c_n)
        for n, t in zip(res, flat):
            self.nodes[n].check = f"{what} at {where}"
            self._bind(n, t)
        self.notes.append(f"{what} at {where}: the fused call is drawn as its cell loop "
                          f"({layers} layer{'s' if layers > 1 else ''}, "
                          f"{'bidirectional, ' if bidir else ''}{T} steps), re-run with the "
                          f"same weights and checked equal to torch's output")
        return out

    def _pick(self, func: Any, args: tuple, kwargs: dict, name: str, src: Any) -> Any:
        """``out[:, t]``, ``out.select(1, t)``, ``out.unbind(1)``, ``h_n[-1]``, ``h_n.squeeze(0)``
        on a fused module's output read one step's node: drawn from h(t) itself, so a head
        applied per step (or to the last step, fig. 10.5) gets its step."""
        stack = self._ids[id(src)]
        axis, parts = self._parts.get(stack, (None, None))
        if parts is None:
            return NotImplemented
        picked = _picked(name, args[1:], kwargs, axis, len(parts), src.dim())
        if picked is None:
            return NotImplemented
        out = func(*args, **kwargs)
        outs = list(out) if name == "unbind" else [out]
        for idx, t in zip(picked, outs):
            part = parts[idx]
            n = self._new("getitem", "op", (part,), _same, step=(self.nodes[part].step, True),
                          src=self._src)
            self._bind(n, t)
            self._picks.setdefault(stack, []).append((n, idx))
        return out

    def _fused_direction(self, kind: str, seq: list, hxs: tuple, idx: int, weights: Any,
                         has_b: bool, backward: bool, at: list) -> tuple[list, tuple]:
        """One layer, one direction of a fused module: ([h(1)..h(T)], final state)."""
        v = self._virtual
        w = [self._node_of(t) for t in weights]
        for n in w:
            self.nodes[n].scope = _tape.STATE.scope  # layer 2's U2 lives in layer2/
        T = len(seq)
        hname = "g" if backward else "h"   # the book's names in a bidirectional RNN
        init = at[T + 1] if backward else at[0]
        state = []
        for j, h0 in enumerate(hxs):
            nm = hname if j == 0 else "c"
            if self._tracked(h0):
                state.append(v("getitem", (self._node_of(h0),), cells.select(0, idx), nm, init))
            else:
                state.append(v("leaf", (), cells.const(h0[idx]), nm, init, kind="input"))
        hs = [0] * T
        st = tuple(state)
        for t in (range(T - 1, -1, -1) if backward else range(T)):
            st = cells.cell_equations(v, kind, seq[t], st, w[0], w[1], w[2] if has_b else None,
                                      w[3] if has_b else None, at[t + 1], hname, "c")
            hs[t] = st[0]
        return hs, st


_PICKS = frozenset({"__getitem__", "select", "unbind", "squeeze"})


def _picked(name: str, rest: tuple, kwargs: dict, axis: int, n: int, ndim: int) -> list | None:
    """Which entries along `axis` a getitem / select / unbind / squeeze takes, when it takes
    whole entries only (else None: recorded as a plain op)."""
    def entry(i: Any) -> int | None:
        if isinstance(i, bool) or not isinstance(i, int) or not -n <= i < n:
            return None
        return i % n

    if name == "unbind":
        dim = rest[0] if rest else kwargs.get("dim", 0)
        return list(range(n)) if dim % ndim == axis else None
    if name == "select":
        dim, i = (rest + (None, None))[:2] if len(rest) >= 2 else (kwargs.get("dim"),
                                                                   kwargs.get("index"))
        e = entry(i)
        return [e] if dim is not None and dim % ndim == axis and e is not None else None
    if name == "squeeze":
        dim = rest[0] if rest else kwargs.get("dim")
        return [0] if n == 1 and dim is not None and dim % ndim == axis else None
    index = rest[0] if rest else None
    index = index if isinstance(index, tuple) else (index,)
    if len(index) != axis + 1 or any(not (isinstance(i, slice) and i == slice(None))
                                     for i in index[:axis]):
        return None
    e = entry(index[axis])
    return None if e is None else [e]


def _same(a: Any) -> Any:
    return a
