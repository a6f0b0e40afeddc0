"""Backward: one reverse sweep over the tape, accumulating gradients by node id.

Flow: model code -> tape -> **backward** -> `.grad` on leaves (and, on request, every node's
gradient and every edge's contribution norm for the export and the gradient-flow views).

The tape is in execution order, so walking it from the output's index down to 0 visits every
node after all of its consumers: no recursion, no topological sort. Gradients accumulate (fan-out,
diamonds, a weight used at every time step); they are never overwritten. A tensor's gradient has
the tensor's dtype (a float32 leaf of a graph promoted to float64 gets a float32 `.grad`).

This module builds on `tensor` and installs ``Tensor.backward`` (so `tensor` never imports it).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import tape as _tp
from .anomaly import check_backward
from .registry import SliceGrad, densify
from .tape import FREED, Meta, Tape
from .tensor import Tensor


def _seed(t: Tensor, grad: Any, who: str = "backward") -> np.ndarray:
    if grad is None:
        if t.data.size != 1:
            raise RuntimeError(
                f"{who}: the output has shape {t.shape}; {who} without a gradient needs a "
                f"scalar (one element). Pass grad= of shape {t.shape}, or reduce with .sum()")
        return np.ones_like(t.data)
    g = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=t.data.dtype)
    if g.shape != t.shape:
        raise ValueError(f"{who}: grad has shape {g.shape} but the output has shape {t.shape}")
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


# ------------------------------------------------------------------------------------------------
# the sweep and its pieces
# ------------------------------------------------------------------------------------------------

def sweep(tape: Tape, seeds: dict[int, np.ndarray], retain_graph: bool = False,
          keep_grads: bool = False, capture: set[int] | None = None,
          write_leaves: bool = True) -> dict[int, np.ndarray]:
    """The reverse sweep from the seeded node ids; returns the gradients of `capture` ids.

    When the walk reaches a node its gradient is complete (every consumer has a larger id).
    `_arrive` gives it to whatever watches the node (hooks, `capture`, kept and retained
    gradients); a leaf hands it to its tensor (`_leaf_grad`); an op's saved buffers are checked
    (`_check_saved`: released, or changed in place) and its backward turns the gradient into one
    per input, which `_accumulate` adds into that input's buffer. The first contribution is held
    as it is; it is copied before a second is added, unless the op that made it declared its
    gradients fresh (``op.fresh``: nobody else holds them). The common path of an op stays
    inline: it runs once per recorded op.
    """
    ops, inputs, need_l, saved_l = tape.ops, tape.inputs, tape.need, tape.saved
    top = max(seeds)
    grads: list[Any] = [None] * (top + 1)
    for i, g in seeds.items():
        grads[i] = g
    captured: dict[int, np.ndarray] = {}
    owned: set[int] = set()  # ids whose gradient buffer the sweep may add into (its own)
    if keep_grads:
        for d in (tape.grad_norms, tape.edge_norms, tape.node_grads, tape.contribs):
            d.clear()
    watch = bool(tape.hooks or tape.retained or keep_grads or capture)
    stale = _stale_leaves(tape)
    anomaly = _tp.current_state().anomaly
    # a `fresh` op hands its new arrays over unless keep_grads keeps each contribution
    can_give = not keep_grads
    for i in range(top, -1, -1):
        g = grads[i]
        if g is None:
            continue
        grads[i] = None
        op = ops[i]
        if op is None:  # a leaf
            g = _leaf_grad(tape, i, g)
            if watch:
                _arrive(tape, i, g, capture, captured, keep_grads)
            if write_leaves:
                leaf = tape.leaf[i]
                leaf._grad = g.copy() if leaf._grad is None else leaf._grad + g
            continue
        if watch:
            g = _arrive(tape, i, g, capture, captured, keep_grads)
        saved = saved_l[i]
        if saved is FREED or stale:
            _check_saved(tape, i, saved, stale)
        try:
            gs = op.backward(g, saved, need_l[i])
        except Exception as e:  # a backward that fails names where its op was recorded
            m = Meta._make(tape.meta[i])
            raise type(e)(f"backward of {op.name}{_tp.where(m.scope, m.step)}: {e}") from e
        if not retain_graph:
            saved_l[i] = FREED
        # a `fresh` op hands its new arrays over: later contributions add into them in place
        # (unless keep_grads, which keeps each contribution for the per-step views)
        give = op.fresh and can_give
        for j, gj, nd in zip(inputs[i], gs, need_l[i]):
            if gj is None or not nd:
                continue
            if anomaly:
                check_backward(tape, i, j, densify(gj))
            if grads[j] is None and gj.__class__ is not SliceGrad:
                grads[j] = gj  # the first contribution is held as it is
                if give:
                    owned.add(j)
            else:
                _accumulate(grads, owned, j, gj)
        if keep_grads:
            _keep_edges(tape, i, gs)
    return captured


def _arrive(tape: Tape, i: int, g: np.ndarray, capture: set[int] | None,
            captured: dict[int, np.ndarray], keep_grads: bool) -> np.ndarray:
    """Run node i's hooks, then hand its gradient to what asked for it; returns the gradient."""
    hooks = tape.hooks.get(i)
    if hooks:
        g = _run_hooks(hooks, g)
    if capture is not None and i in capture:
        captured[i] = g
    if keep_grads:
        tape.grad_norms[i] = _norm(g)
        tape.node_grads[i] = g if g.flags.writeable else g.copy()
    ref = tape.retained.get(i)
    if ref is not None:
        t = ref()
        if t is not None:
            own = g.astype(t.data.dtype)  # a copy, writable, in the tensor's dtype
            t._grad = own if t._grad is None else t._grad + own
    return g


def _leaf_grad(tape: Tape, i: int, g: np.ndarray) -> np.ndarray:
    """The finished gradient of leaf node i: its tensor's hooks applied, in its dtype."""
    if i in tape.external:
        step = Meta._make(tape.meta[i]).step
        made = tape.foreign[i]()
        if made is not None and made._tape is not None and not made._tape.released:
            raise RuntimeError(
                f"backward: tensor {tape.leaf[i].name or ''} (made at step {step}) was recorded "
                f"on another tape that is still open: by another thread or asyncio task (each "
                f"records on its own tape), or before tg.new_graph(). No gradient can flow back "
                f"into it from here: detach() it, or record both in the same thread / task")
        raise RuntimeError(
            f"backward: tensor {tape.leaf[i].name or ''} (made at step {step}) "
            f"was made by a graph that was already backpropagated and released. Carried state in "
            f"truncated BPTT must be cut with .detach() before the next forward; or pass "
            f"retain_graph=True to the first backward")
    leaf = tape.leaf[i]
    hooks = getattr(leaf, "_hooks", None)
    if hooks:
        g = _run_hooks(hooks, g)
    dtype = leaf.data.dtype
    return g if g.dtype == dtype else g.astype(dtype)


def _check_saved(tape: Tape, i: int, saved: Any, stale: dict) -> None:
    """Raise when op node i's saved buffers were released, or changed in place since saved."""
    if saved is FREED:
        m = Meta._make(tape.meta[i])
        raise RuntimeError(
            f"backward: {tape.ops[i].name}{_tp.where(m.scope, m.step)}: its saved buffers were "
            f"released by an earlier backward. Pass retain_graph=True to the first backward to "
            f"run backward through the same graph twice; when carrying state from one "
            f"truncated-BPTT window to the next, cut it with .detach() first")
    if saved:
        _check_versions(tape, i, saved, stale)


def _accumulate(grads: list, owned: set[int], j: int, gj: Any) -> None:
    """Add one more contribution `gj` (an array or a slice piece) into node j's gradient."""
    cur = grads[j]
    if cur is None:  # a first slice piece: a zero buffer of its own, which later pieces add into
        grads[j] = gj.dense()
        owned.add(j)
        return
    if j not in owned:  # never add into an op's own output, a seed or another node's gradient
        cur = cur.copy(order="K")  # in the first contribution's layout: the later adds stay
        # contiguous when the contributions share it (a C-order copy of F-ordered ones is strided)
        owned.add(j)
    if gj.__class__ is SliceGrad:
        cur[gj.index] += gj.value
    else:
        cur += gj
    grads[j] = cur


def _stale_leaves(tape: Tape) -> dict[int, tuple]:
    """Leaf node id -> (data, limit) for the leaves changed in place since they were recorded.

    Ops recorded after `limit` (the node the leaf got when it was next used, at its new version)
    saved the new values and are fine; `limit` is None when every later op is suspect.
    """
    versions, out = tape.versions, {}
    for j, leaf in tape.leaf.items():
        v = leaf._version
        if v != versions.get(j, 0):
            latest = tape.leaves.get(id(leaf))
            fresh = latest is not None and latest != j and versions.get(latest, 0) == v
            out[j] = (leaf.data, latest if fresh else None)
    return out


def _check_versions(tape: Tape, i: int, saved: tuple, stale: dict) -> None:
    """Raise when op node i saved an array that shares memory with a leaf changed in place."""
    arrays = [a for s in saved for a in (s if isinstance(s, tuple) else (s,))
              if isinstance(a, np.ndarray)]
    for j, (data, limit) in stale.items():
        if limit is not None and i > limit:
            continue
        if any(np.may_share_memory(a, data) for a in arrays):
            m, leaf = Meta._make(tape.meta[i]), tape.leaf[j]
            what = f"{leaf.name!r}" if leaf.name else f"a leaf of shape {leaf.shape}"
            raise RuntimeError(
                f"backward: {tape.ops[i].name}{_tp.where(m.scope, m.step)} saved the value of "
                f"{what} for its gradient, and that value was changed in place after the op was "
                f"recorded (version {tape.versions.get(j, 0)} -> {leaf.version}, e.g. by an "
                f"optimizer step). The gradient would be taken at the new value: run the forward "
                f"again after the update, or call backward before the update")


def _keep_edges(tape: Tape, i: int, gs: Sequence) -> None:
    """Record the contribution sent along each edge into node i (summed when an input repeats)."""
    per: dict[int, np.ndarray] = {}
    for j, gj, need in zip(tape.inputs[i], gs, tape.need[i]):
        if gj is not None and need:
            gj = densify(gj)
            per[j] = gj if j not in per else per[j] + gj
    for j, gj in per.items():
        tape.edge_norms[(j, i)] = _norm(gj)
        if Meta._make(tape.meta[j]).kind == "param":
            tape.contribs[(j, i)] = gj


# ------------------------------------------------------------------------------------------------
# the public entry points
# ------------------------------------------------------------------------------------------------

def backward(t: Tensor, grad: Any = None, retain_graph: bool = False,
             keep_grads: bool = False) -> None:
    """Backpropagate from `t` into the `.grad` of every leaf that requires grad.

    Only what this sweep visited is released: another output of the same graph (a second loss,
    another head) can still be backpropagated, as in PyTorch.
    """
    if not t.requires_grad:
        raise RuntimeError(
            f"backward: this tensor ({t.op or 'leaf'}{' ' + t.name if t.name else ''}) does not "
            f"require grad: no input of the ops that made it requires grad (was it made under "
            f"no_grad(), or from detached / integer tensors?)")
    g = _seed(t, grad)
    tape = t._tape
    if tape is None:  # a leaf: its gradient is the seed itself
        if getattr(t, "_hooks", None):
            g = _run_hooks(t._hooks, g)
        t._grad = g.copy() if t._grad is None else t._grad + g
        return
    sweep(tape, {t._idx: g}, retain_graph=retain_graph, keep_grads=keep_grads)
    if not retain_graph:
        tape.released = True  # ops on fresh leaves start a new tape; this one goes with its tensors


def _tensor_backward(self: Tensor, grad: Any = None, retain_graph: bool = False,
                     keep_grads: bool = False) -> None:
    """Backpropagate from this tensor: one reverse sweep over its tape.

    Parameters
    ----------
    grad : array_like, optional
        dL/d(self); required unless self holds one element.
    retain_graph : bool
        Keep the saved buffers of what this sweep visits, so backward can run through them again.
    keep_grads : bool
        Keep every node's gradient (``t.grad`` on any tensor) and the norm of every edge's
        gradient contribution, for `trace` and gradient-flow views.

    Examples
    --------
    >>> x = tg.tensor([1.0, 2.0], requires_grad=True)   # doctest: +SKIP
    >>> (x * x).sum().backward(); x.grad                 # doctest: +SKIP
    array([2., 4.])
    """
    backward(self, grad, retain_graph=retain_graph, keep_grads=keep_grads)


_tensor_backward.__name__ = _tensor_backward.__qualname__ = "backward"
Tensor.backward = _tensor_backward


def _as_list(x: Any, what: str) -> list:
    xs = [x] if isinstance(x, Tensor) else list(x)
    for k, t in enumerate(xs):
        if not isinstance(t, Tensor):
            raise TypeError(f"grad: {what} {k} is a {type(t).__name__}; expected a Tensor")
    return xs


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs: Any = None, retain_graph: bool = False,
         allow_unused: bool = False) -> list[Tensor | None]:
    """Gradients of `outputs` with respect to `inputs`, returned (``.grad`` is left alone).

    Parameters
    ----------
    outputs, inputs : Tensor or sequence of Tensors
        Outputs may have different shapes and may include leaves (as in PyTorch,
        ``grad([x * x, x], [x])`` is ``2x + 1``).
    grad_outputs : array_like or sequence, optional
        One seed per output (None for a one-element output).
    retain_graph : bool
    allow_unused : bool
        As in PyTorch: False (the default) raises for an input the outputs do not depend on;
        True returns None for it.

    Returns
    -------
    list of Tensor or None
        One new tensor per input, in the input's dtype, holding a writable array of its own.
    """
    outs, ins = _as_list(outputs, "output"), _as_list(inputs, "input")
    gouts = [None] * len(outs) if grad_outputs is None else (
        [grad_outputs] if len(outs) == 1 and not isinstance(grad_outputs, (list, tuple))
        else list(grad_outputs))
    if len(gouts) != len(outs):
        raise ValueError(f"grad: got {len(gouts)} grad_outputs for {len(outs)} outputs")
    for k, o in enumerate(outs):
        if not o.requires_grad:
            raise RuntimeError(f"grad: output {k} does not require grad (no input of the ops "
                               f"that made it requires grad)")
    tapes = {id(o._tape): o._tape for o in outs if o._tape is not None}
    if len(tapes) > 1:
        raise RuntimeError("grad: the outputs were recorded on different graphs")
    tape = next(iter(tapes.values()), None)
    seeds: dict[int, np.ndarray] = {}
    direct: dict[int, np.ndarray] = {}  # a leaf output its graph never read: d out/d out only
    for o, go in zip(outs, gouts):
        s = _seed(o, go, "grad")
        i = o._idx if o._tape is not None else (tape.leaves.get(id(o)) if tape else None)
        into = direct if i is None else seeds
        key = id(o) if i is None else i
        into[key] = s if key not in into else into[key] + s
    want: list[int | None] = []
    for k, x in enumerate(ins):
        if not x.requires_grad:
            raise RuntimeError(f"grad: input {k} does not require grad")
        i = x._idx if (x._tape is tape and tape is not None) else (
            tape.leaves.get(id(x)) if tape is not None and x._tape is None else None)
        want.append(i)
    got = {}
    if seeds:
        got = sweep(tape, seeds, retain_graph=retain_graph,
                    capture={i for i in want if i is not None}, write_leaves=False)
        if not retain_graph:
            tape.released = True
    res: list[Tensor | None] = []
    for k, (x, i) in enumerate(zip(ins, want)):
        g = got.get(i) if i is not None else None
        if id(x) in direct:
            g = direct[id(x)] if g is None else g + direct[id(x)]
        if g is None:
            if not allow_unused:
                raise RuntimeError(
                    f"grad: input {k} ({x.name or 'shape ' + str(x.shape)}) was not used to "
                    f"compute the outputs; pass allow_unused=True to get None for it")
            res.append(None)
        else:
            res.append(Tensor(np.array(g, dtype=x.data.dtype)))  # a copy of its own
    return res


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
            m = Meta._make(tape.meta[i])
            out.append((m.step, m.scope, arr))
    return out
