"""Backward: one reverse sweep over the tape, accumulating gradients by node id.

Flow: model code -> tape -> **backward** -> `.grad` on leaves (and, on request, every node's
gradient and every edge's contribution norm for the export and the gradient-flow views).

The tape is in execution order, so walking it from the output's index down to 0 visits every
node after all of its consumers: no recursion, no topological sort. Gradients accumulate (fan-out,
diamonds, a weight used at every time step); they are never overwritten.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import tape as _tp
from .registry import SliceGrad, densify
from .tape import FREED, Tape
from .tensor import Tensor


def _seed(t: Tensor, grad: Any) -> np.ndarray:
    if grad is None:
        if t.data.size != 1:
            raise RuntimeError(
                f"backward: the output has shape {t.shape}; backward() without a gradient needs a "
                f"scalar (one element). Pass grad= of shape {t.shape}, or reduce with .sum()")
        return np.ones_like(t.data)
    g = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=t.data.dtype)
    if g.shape != t.shape:
        raise ValueError(f"backward: grad has shape {g.shape} but the output has shape {t.shape}")
    return g


def _norm(g: np.ndarray) -> float:
    return float(np.sqrt(np.sum(g * g))) if g.dtype.kind in "fc" else 0.0


def _run_hooks(fns: list, g: np.ndarray) -> np.ndarray:
    for fn in fns:
        r = fn(g)
        if r is not None:
            r = np.asarray(r.data if isinstance(r, Tensor) else r)
            if r.shape != g.shape:
                raise ValueError(f"hook {getattr(fn, '__name__', fn)} returned shape {r.shape}, "
                                 f"expected {g.shape}")
            g = r
    return g


def sweep(tape: Tape, seeds: dict[int, np.ndarray], retain_graph: bool = False,
          keep_grads: bool = False, capture: set[int] | None = None,
          write_leaves: bool = True) -> dict[int, np.ndarray]:
    """The reverse sweep from the seeded node ids; returns the gradients of `capture` ids."""
    ops, inputs, saved_l, need_l = tape.ops, tape.inputs, tape.saved, tape.need
    top = max(seeds)
    grads: list[Any] = [None] * (top + 1)
    for i, g in seeds.items():
        grads[i] = g
    captured: dict[int, np.ndarray] = {}
    owned: set[int] = set()  # ids whose gradient buffer the sweep allocated (safe to add into)
    hooks, retained, anomaly = tape.hooks, tape.retained, _tp.current_state().anomaly
    if keep_grads:
        for d in (tape.grad_norms, tape.edge_norms, tape.node_grads, tape.contribs):
            d.clear()
    for i in range(top, -1, -1):
        g = grads[i]
        if g is None:
            continue
        grads[i] = None
        if hooks and i in hooks:
            g = _run_hooks(hooks[i], g)
        if capture is not None and i in capture:
            captured[i] = g
        if keep_grads:
            tape.grad_norms[i] = _norm(g)
            tape.node_grads[i] = g
        if retained and i in retained:
            t = retained[i]()
            if t is not None:
                t._grad = g if t._grad is None else t._grad + g
        op = ops[i]
        if op is None:  # a leaf
            _to_leaf(tape, i, g, write_leaves)
            continue
        saved = saved_l[i]
        if saved is FREED:
            _, _, _, scope, step, _ = tape.meta[i]
            raise RuntimeError(
                f"backward: {op.name}{_tp.where(scope, step)}: its saved buffers were released by "
                f"an earlier backward. Pass retain_graph=True to the first backward to run "
                f"backward through the same graph twice")
        need = need_l[i]
        try:
            gs = op.backward(g, saved, need)
        except Exception as e:  # a backward that fails names where its op was recorded
            _, _, _, scope, step, _ = tape.meta[i]
            raise type(e)(f"backward of {op.name}{_tp.where(scope, step)}: {e}") from e
        if not retain_graph:
            saved_l[i] = FREED
        if keep_grads:
            _keep_edges(tape, i, gs)
        for j, gj, nd in zip(inputs[i], gs, need):
            if gj is None or not nd:
                continue
            if anomaly:
                from .debug import check_backward
                check_backward(tape, i, j, densify(gj))
            cur = grads[j]
            if cur is None:
                if gj.__class__ is SliceGrad:
                    gj = gj.dense()
                    owned.add(j)
                grads[j] = gj
            else:
                # add in place into buffers this sweep allocated; never into an op's own output
                if j not in owned:
                    cur = densify(cur).copy() if cur.__class__ is not SliceGrad else cur.dense()
                    owned.add(j)
                if gj.__class__ is SliceGrad:
                    cur[gj.index] += gj.value
                else:
                    cur += gj
                grads[j] = cur
    return captured


def _to_leaf(tape: Tape, i: int, g: np.ndarray, write: bool) -> None:
    """Deliver the finished gradient of leaf node i to its tensor's `.grad` (accumulating)."""
    if i in tape.external:
        leaf = tape.leaf[i]
        made = tape.foreign[i]()
        if made is not None and made._tape is not None and not made._tape.released:
            raise RuntimeError(
                f"backward: tensor {leaf.name or ''} (made at step {tape.meta[i][4]}) was recorded "
                f"on another tape that is still open: by another thread or asyncio task (each "
                f"records on its own tape), or before tg.new_graph(). No gradient can flow back "
                f"into it from here: detach() it, or record both in the same thread / task")
        raise RuntimeError(
            f"backward: tensor {leaf.name or ''} (made at step {tape.meta[i][4]}) was made by a graph that "
            f"was already backpropagated and released. Carried state in truncated BPTT must be "
            f"cut with .detach() before the next forward; or pass retain_graph=True to the first "
            f"backward")
    leaf = tape.leaf.get(i)
    if leaf is None or not leaf.requires_grad:
        return
    hooks = getattr(leaf, "_hooks", None)
    if hooks:
        g = _run_hooks(hooks, g)
    if write:
        leaf._grad = g.copy() if leaf._grad is None else leaf._grad + g


def _keep_edges(tape: Tape, i: int, gs: Sequence) -> None:
    """Record the contribution sent along each edge into node i (summed when an input repeats)."""
    per: dict[int, np.ndarray] = {}
    for j, gj, need in zip(tape.inputs[i], gs, tape.need[i]):
        if gj is not None and need:
            gj = densify(gj)
            per[j] = gj if j not in per else per[j] + gj
    for j, gj in per.items():
        tape.edge_norms[(j, i)] = _norm(gj)
        if tape.meta[j][2] == "param":
            tape.contribs[(j, i)] = gj


def backward(t: Tensor, grad: Any = None, retain_graph: bool = False,
             keep_grads: bool = False) -> None:
    """Backpropagate from `t` into the `.grad` of every leaf that requires grad."""
    if not t.requires_grad:
        raise RuntimeError(
            f"backward: this tensor ({t.op or 'leaf'}{' ' + t.name if t.name else ''}) does not "
            f"require grad: no input of the ops that made it requires grad (was it made under "
            f"no_grad(), or from detached / integer tensors?)")
    g = _seed(t, grad)
    tape = t._tape
    if tape is None:  # a leaf: its gradient is the seed itself
        t._grad = g.copy() if t._grad is None else t._grad + g
        return
    sweep(tape, {t._idx: g}, retain_graph=retain_graph, keep_grads=keep_grads)
    if not retain_graph:
        tape.released = True  # new ops start a fresh tape; this one goes when its tensors go


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs: Any = None, retain_graph: bool = False) -> list[Tensor | None]:
    """Gradients of `outputs` with respect to `inputs`, returned (``.grad`` is left alone).

    Returns one Tensor per input (``None`` where the input does not reach the outputs).
    """
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    gouts = [None] * len(outs) if grad_outputs is None else (
        [grad_outputs] if len(outs) == 1 and not isinstance(grad_outputs, (list, tuple))
        else list(grad_outputs))
    tapes = {id(o._tape) for o in outs if o._tape is not None}
    if len(tapes) != 1 or any(not o.requires_grad for o in outs):
        raise RuntimeError("grad: every output must be made by recorded ops from inputs that "
                           "require grad, on one graph")
    tape = outs[0]._tape
    seeds: dict[int, np.ndarray] = {}
    for o, go in zip(outs, gouts):
        s = _seed(o, go)
        seeds[o._idx] = s if o._idx not in seeds else seeds[o._idx] + s
    want = {}
    for k, x in enumerate(ins):
        if x._tape is tape:
            want[k] = x._idx
        else:
            want[k] = tape.leaves.get(id(x), -1)
    got = sweep(tape, seeds, retain_graph=retain_graph, capture=set(want.values()),
                write_leaves=False)
    if not retain_graph:
        tape.released = True
    return [Tensor(got[i]) if i in got else None for i in (want[k] for k in range(len(ins)))]


def contributions(param: Tensor, t: Tensor | None = None) -> list[tuple[int | None, str, np.ndarray]]:
    """Per-use gradient contributions to a leaf (the book's ∇W(t)), in tape order.

    Needs a backward with ``keep_grads=True``. Returns ``(step, scope, array)`` for every op that
    read `param`; the arrays sum to ``param.grad`` (of that backward). `t` is any tensor of the
    graph (by default the most recent graph is used).
    """
    tape = t._tape if t is not None else _tp.last_tape()
    if tape is None or not tape.contribs:
        raise RuntimeError("contributions: run backward(keep_grads=True) first, and pass a tensor "
                           "of that graph as `t`")
    li = tape.leaves.get(id(param))
    if li is None:
        raise ValueError(f"contributions: parameter {param.name!r} was not used in this graph")
    out = []
    for (j, i), arr in sorted(tape.contribs.items()):
        if j == li:
            _, _, _, scope, step, _ = tape.meta[i]
            out.append((step, scope, arr))
    return out
