"""A fused Elman recurrence: the loop h(1..tau) as one recorded op, its backward the seed's BPTT.

Flow: `RNN(..., fused=True)` computes the input projections U x(t) of all steps in one op, runs
this primitive (``elman_scan``) over them, and reads the outputs o(t) = c + V h(t) of all steps
in one matmul; per-step views of h(t) and o(t) (``getitem`` inside ``tg.step(t)``, named ``h``
and ``o``) feed `sequence_loss` as before. Fewer, larger ops than the per-step recording, with
the same loss and gradients. The forward registers an `ElmanUnfold` with the export
(`tinygraph.export.register_unfold`): `tg.trace` draws the fused group as the book's per-step
graph, node for node as the per-step recording, with the per-step gradient norms after
``backward(keep_grads=True)``.

A float input that requires grad, padding (``lengths=``) and `per_step_copies` record per step.
"""
from __future__ import annotations

import weakref
from typing import Any, Callable

import numpy as np

from tinygraph.registry import defop


def _examples(r: np.random.Generator) -> list:
    T, B, H = 4, 2, 3
    return [([r.standard_normal((T, B, H)), 0.5 * r.standard_normal((H, H)),
              r.standard_normal(H), r.standard_normal((B, H))], {})]


@defop("elman_scan", examples=_examples, public=False)
class ElmanScan:
    """h(t) = tanh(a(t) + W h(t-1) + b) for t = 1..tau, from a(t) = U x(t) (tau, B, H).

    Inputs ``(xu (tau, B, H), W (H, H), b (H,), h0 (B, H))``; output every h(t), (tau, B, H).
    The backward is the seed's BPTT: with grad h(t) = g(t) + W^T diag(1 - h(t+1)^2) grad h(t+1),
    grad a(t) = diag(1 - h(t)^2) grad h(t), grad W = sum_t grad a(t) h(t-1)^T, grad b =
    sum_t grad a(t), grad h(0) = W^T grad a(1) (the last two sums as one GEMM each).
    """

    def forward(xu, W, b, h0):
        T = xu.shape[0]
        out = np.empty(xu.shape, dtype=np.result_type(xu, W, h0))
        WT, h = W.T, h0
        for t in range(T):
            h = out[t] = np.tanh(xu[t] + h @ WT + b)
        return out, (out, W, h0, b.shape)

    def backward(g, saved, need):
        hs, W, h0, bshape = saved
        T, B, H = hs.shape
        da = 1.0 - hs * hs                           # tanh'(a(t)), then grad a(t) in place
        carry = np.zeros((B, H), dtype=hs.dtype)     # W^T grad a(t+1), flowing into h(t)
        for t in range(T - 1, -1, -1):
            dt = da[t]
            dt *= g[t] + carry
            carry = dt @ W
        gW = gb = None
        if need[1]:                                  # sum_t grad a(t) h(t-1)^T
            gW = da[0].T @ h0
            if T > 1:
                gW += da[1:].reshape((T - 1) * B, H).T @ hs[:-1].reshape((T - 1) * B, H)
        if need[2]:
            gb = da.reshape(T * B, H).sum(axis=0).reshape(bshape)
        return (da if need[0] else None, gW, gb, carry if need[3] else None)


class ElmanUnfold:
    """What the export needs to draw a fused `RNN` run as its per-step graph (fig. 10.3).

    The fused forward records tape nodes ``start..end-1`` (input projection, ``elman_scan``,
    output projection, the per-step slices h(t) and o(t)). `records` lists the nodes the
    per-step recording makes instead, in its order and with its names, scopes and step tags:
    U, U^T, W, W^T, V, V^T, then per step x(t), U x(t), W h(t-1), their sum, + b, h(t) = tanh,
    and (every step, or the last for ``output="last"``) V h(t), + c = o(t). Leaves recorded by
    the group (U, W, b, h(0), V, c) are emitted where the per-step run first reads them.
    `grads` gives the per-step gradient norms after ``backward(keep_grads=True)``: grad h(t)
    and grad a(t) are the BPTT recursion run again (`state_grads`) from the gradient that reached
    the scan (kept by keep_grads), with W and V as they were at the forward; `tg.flow` uses the
    same recursion per loss term and `jacobians` for the spectra.
    """

    def __init__(self, start: int, end: int, ids: dict, xs: np.ndarray, hs: np.ndarray,
                 h0: np.ndarray, W: np.ndarray, V: np.ndarray | None, every: bool,
                 scopes: tuple[str, str], is_ids: bool, src: tuple) -> None:
        self.start, self.end, self.ids, self.xs, self.hs, self.h0 = start, end, ids, xs, hs, h0
        self.W, self.V, self.every, self.is_ids = W.copy(), None if V is None else V.copy(), \
            every, is_ids
        self.cell_scope, self.out_scope = scopes
        self.src, self.code = src
        T = hs.shape[0]
        self.o_steps = ([] if V is None else range(1, T + 1) if every else [T])
        self.aliases = dict(zip(ids["h"], (("h", t) for t in range(1, T + 1))))
        self.aliases.update(zip(ids["o"], (("o", t) for t in self.o_steps)))
        self.aliases.update(zip(ids["mo"], (("mo", t) for t in self.o_steps)))

    def _mine(self, key: int | None) -> bool:
        return key is not None and self.start <= key < self.end

    def records(self) -> list:
        """``(key, op, meta, name, inputs)`` of every per-step node, in recording order."""
        ids, out = self.ids, []
        T, B, H = self.hs.shape
        hdt, cs, os_ = self.hs.dtype, self.cell_scope, self.out_scope

        def real(key):
            if self._mine(key):
                out.append((key, None, None, None, None))

        def op(key, name, ins, shape, scope, step, label=None):
            out.append((key, name, (shape, hdt, "op", scope, step, True), label, ins))
        real(ids["U"]); real(ids["UT"]); real(ids["W"])                       # noqa: E702
        op(("WT",), "transpose", (ids["W"],), (H, H), cs, None)
        if self.V is not None:
            real(ids["V"]); real(ids["VT"])                                  # noqa: E702
        K = None if self.V is None else self.V.shape[0]
        prev = ids["h0"]
        for t in range(1, T + 1):
            x = self.xs[t - 1]
            out.append((("x", t), None, (x.shape, x.dtype, "input", cs, t, False), "x", ()))
            if self.is_ids:
                op(("e", t), "embedding", (ids["UT"], ("x", t)), (B, H), cs, t)
            else:
                op(("e", t), "matmul", (("x", t), ids["UT"]), (B, H), cs, t)
            if t == 1:
                real(ids["h0"])
            op(("m", t), "matmul", (prev, ("WT",)), (B, H), cs, t)
            op(("a1", t), "add", (("e", t), ("m", t)), (B, H), cs, t)
            if t == 1:
                real(ids["b"])
            op(("a2", t), "add", (("a1", t), ids["b"]), (B, H), cs, t)
            op(("h", t), "tanh", (("a2", t),), (B, H), cs, t, "h")
            if self.V is not None and (self.every or t == T):
                op(("mo", t), "matmul", (("h", t), ids["VT"]), (B, K), os_, t)
                if t == self.o_steps[0]:
                    real(ids["c"])
                op(("o", t), "add", (("mo", t), ids["c"]), (B, K), os_, t, "o")
            prev = ("h", t)
        return out

    def state_grads(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """grad h(t) and grad a(t), each (tau, B, H), from the gradient `g` reaching every h(t)
        from outside the recurrence: the seed's BPTT, grad h(t) = g(t) + W^T grad a(t+1)."""
        gh, da = np.empty_like(g), np.empty_like(g)
        for t in range(g.shape[0] - 1, -1, -1):
            gh[t] = g[t] if t == g.shape[0] - 1 else g[t] + da[t + 1] @ self.W
            da[t] = (1.0 - self.hs[t] * self.hs[t]) * gh[t]
        return gh, da

    def keep_hook(self, tape: Any) -> Callable[[np.ndarray], None]:
        """A hook for the fused op's output: under ``backward(keep_grads=True)`` (the tape keeps
        node gradients) the slices h(t) get the whole grad h(t), not only their direct part."""
        ref = weakref.ref(tape)                      # the tape holds the hook: no cycle

        def keep(g: np.ndarray) -> None:
            tp = ref()
            if tp is not None and tp.node_grads:
                gh = self.state_grads(np.asarray(g))[0]
                for t, i in enumerate(self.ids["h"]):
                    tp.node_grads[i] = gh[t]
                    tp.grad_norms[i] = float(np.linalg.norm(gh[t]))
        return keep

    def jacobians(self) -> np.ndarray:
        """J[t-1, b] = dh(t)/dh(t-1) = diag(1 - h(t)^2) W for batch row b, (tau, B, H, H)."""
        return (1.0 - self.hs * self.hs)[..., None] * self.W

    def grads(self, tape) -> tuple[dict, dict]:
        """Per-step gradient norms (nodes, edges) from the gradients keep_grads kept."""
        ng, ids, norm = tape.node_grads, self.ids, np.linalg.norm
        nodes: dict = {}
        edges: dict = {}
        go = {t: ng.get(i) for t, i in zip(self.o_steps, ids["o"])}
        for t, g in go.items():
            if g is None:
                continue
            n = nodes[("o", t)] = nodes[("mo", t)] = float(norm(g))
            edges[(("mo", t), ("o", t))] = n
            edges[(ids["c"], ("o", t))] = float(norm(g.sum(axis=0)))
            edges[(ids["VT"], ("mo", t))] = float(norm(self.hs[t - 1].T @ g))
            edges[(("h", t), ("mo", t))] = float(norm(g @ self.V))
        g_ext = ng.get(ids["scan"])
        if g_ext is None:
            return nodes, edges
        gh, da = self.state_grads(g_ext)
        T, B, H = self.hs.shape
        gW = np.zeros((H, H), dtype=self.hs.dtype)
        for t in range(T, 0, -1):
            nodes[("h", t)] = float(norm(gh[t - 1]))
            n = float(norm(da[t - 1]))
            for k in ("e", "m", "a1", "a2"):
                nodes[(k, t)] = n
            for e in ((("e", t), ("a1", t)), (("m", t), ("a1", t)), (("a1", t), ("a2", t)),
                      (("a2", t), ("h", t))):
                edges[e] = n
            edges[(ids["b"], ("a2", t))] = float(norm(da[t - 1].sum(axis=0)))
            hp = self.h0 if t == 1 else self.hs[t - 2]
            gWt = da[t - 1].T @ hp                   # grad W(t); W^T's is its transpose
            gW += gWt
            edges[(("WT",), ("m", t))] = float(norm(gWt))
            edges[(ids["h0"] if t == 1 else ("h", t - 1), ("m", t))] = \
                float(norm(da[t - 1] @ self.W))
            x = self.xs[t - 1]
            if self.is_ids:
                gU = np.zeros((ids["D"], H), dtype=da.dtype)
                np.add.at(gU, x, da[t - 1])
            else:
                gU = x.T @ da[t - 1]
            edges[(ids["UT"], ("e", t))] = float(norm(gU))
        nodes[("WT",)] = edges[(ids["W"], ("WT",))] = float(norm(gW))
        return nodes, edges
