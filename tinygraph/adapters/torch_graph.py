"""The PyTorch adapter's export: the recorded nodes as a `tinygraph.Graph` in the schema.

Flow: `torch.Recording` (hooks, nodes) -> **graph()**: the nodes the output depends on, their
values replayed and checked, torch's gradients per node and each edge's vector-Jacobian
product, steps, names and labels (`torch_infer`), the per-loss-term flow (`torch_flow`) ->
`Graph` -> viz. A mixin of `Recording`.
"""
from __future__ import annotations

import math
from typing import Any

import torch

import tinygraph
from tinygraph.export import SCHEMA_VERSION, Graph, reachable

from . import torch_calls as calls
from . import torch_flow
from .torch_infer import Node, infer_names, infer_steps, param_labels


class GraphBuilder:
    """``graph()`` and its stages (mixin of Recording)."""

    # -- the graph -----------------------------------------------------------------------------
    def graph(self, output: Any = None, edge_grads: bool = True,
              flow: bool | None = None) -> Graph:
        """The recorded graph in tinygraph's schema.

        Parameters
        ----------
        output : torch.Tensor, optional
            The node the graph ends in (default: the tensor ``backward()`` was called on, else
            the last recorded one). Only what it depends on is kept, as `tinygraph.trace` does.
        edge_grads : bool
            Compute the gradient sent back along every edge (one vector-Jacobian product per
            op); False leaves edges' ``grad_norm`` None (faster for very long recordings).

        Returns
        -------
        tinygraph.Graph
            ``.to_networkx()``, ``.save(path)``; graph attributes ``engine`` ("torch"),
            ``version`` (torch's), ``schema``, ``output``, ``loss``, ``notes`` and (see
            `flow`) ``flow``.

        Raises
        ------
        ValueError
            If nothing was recorded, or a fused module's re-run differs from torch's output.
        """
        if not self.nodes:
            raise ValueError("Recording.graph: nothing was recorded; run the torch code inside "
                             "`with record(...)` (ops on constants only are not recorded)")
        self._paused = True
        try:
            self.close()
            out = self._output(output)
            keep = self._ancestors(out)
            self._values(keep)
            grads = self._sweep(keep, edge_grads)
            infer_steps(self.nodes, keep, self._explicit)
            infer_names(self.nodes, keep, out)
            labels = param_labels(self.nodes, keep, self._explicit_names)
            if flow is None:
                T = torch_flow.steps_of(self.nodes, keep)
                flow = bool(self._grads) and T <= torch_flow.MAX_STEPS
                if self._grads and not flow:
                    self.notes.append(
                        f"per-loss-term flow not computed: {T} steps is more than "
                        f"{torch_flow.MAX_STEPS} steps (its cost grows as T²); "
                        f"graph(flow=True) computes it anyway")
            gf = None
            if flow:
                gf, note = torch_flow.compute(self.nodes, keep, labels)
                self.notes.append(note)
            return self._export(keep, out, grads, labels, gf)
        finally:
            self._paused = False

    def _output(self, output: Any) -> int:
        if output is None:
            return self._roots[-1] if self._roots else len(self.nodes) - 1
        n = self._ids.get(id(output)) if isinstance(output, torch.Tensor) else None
        if n is None:
            raise ValueError("Recording.graph: `output` was not recorded in this recording")
        return n

    def _ancestors(self, out: int) -> list[int]:
        return reachable([n.inputs for n in self.nodes], out)

    def _values(self, keep: list[int]) -> None:
        N = self.nodes
        with torch.no_grad():
            for i in keep:
                node = N[i]
                if node.fn is None or (node.real and node.check is None):
                    continue
                val = node.fn(*[N[j].value for j in node.inputs])
                if node.check is not None:
                    self._check(node, val)
                    continue
                node.value = val
                node.shape, node.dtype = list(val.shape), calls.dtype_name(val)
                node.requires_grad = (val.is_floating_point() or val.is_complex()) and any(
                    N[j].requires_grad for j in node.inputs)

    def _check(self, node: Node, val: Any) -> None:
        real = node.value
        if val.shape != real.shape:
            raise ValueError(f"{node.check}: the cell loop re-run has shape {tuple(val.shape)}, "
                             f"torch's fused output {tuple(real.shape)}; record with "
                             f"fused='node' to draw the call as one node")
        diff = float((val.double() - real.double()).abs().max()) if val.numel() else 0.0
        scale = max(1.0, float(real.double().abs().max())) if real.numel() else 1.0
        if not diff <= 1e-6 * scale:
            raise ValueError(f"{node.check}: the cell loop re-run differs from torch's fused "
                             f"output by {diff:.3g} (expected <= 1e-6); record with "
                             f"fused='node' to draw the call as one node")
        note = f"max |difference| {diff:.1e}"
        for k, text in enumerate(self.notes):
            if text.startswith(str(node.check)) and "re-run" in text and "difference" not in text:
                self.notes[k] = text + f" ({note})"
                break

    def _sweep(self, keep: list[int], edge_grads: bool) -> dict:
        """Gradients: torch's own on real nodes (hooks); on shadow nodes, torch's gradient at
        the module output sent back through the equations; and per edge, each op's VJP."""
        N = self.nodes
        grads: dict[int, Any] = {}
        for n, gs in self._grads.items():
            total = gs[0]
            for g in gs[1:]:
                total = total + g
            grads[n] = total
        kept = set(keep)
        for stack, picks in self._picks.items():  # what a picked step sent is not sent twice
            if stack in grads and stack in kept:
                axis = self._parts[stack][0]
                g = grads[stack].clone()
                for n, idx in picks:
                    if n in kept and n in grads:
                        g.select(axis, idx).sub_(grads[n])
                grads[stack] = g
        self.edge_grads: dict[tuple[int, int], Any] = {}
        for n in reversed(keep):
            node = N[n]
            g = grads.get(n)
            if g is None or node.fn is None or not node.inputs:
                continue
            need = [N[j].requires_grad for j in node.inputs]
            if not any(need) or not (edge_grads or any(not N[j].real for j in node.inputs)):
                continue
            parts = calls.vjp(node.fn, [N[j].value for j in node.inputs], need, g)
            for j, part in zip(node.inputs, parts):
                if part is None or j not in kept:
                    continue
                e = (j, n)
                self.edge_grads[e] = part if e not in self.edge_grads else self.edge_grads[e] + part
                if not N[j].real:  # a shadow node: its gradient is what its consumers send
                    grads[j] = part if j not in grads else grads[j] + part
        if not edge_grads:
            self.edge_grads = {}
        return grads


    def _export(self, keep: list[int], out: int, grads: dict, labels: dict,
                gf: Any = None) -> Graph:
        N = self.nodes
        new_id = {old: k for k, old in enumerate(keep)}
        nodes, edges = [], []
        for k, i in enumerate(keep):
            node = N[i]
            params = [labels[j] for j in node.inputs if N[j].kind == "param"]
            g = grads.get(i)
            nodes.append({
                "id": k, "op": node.op, "kind": node.kind,
                "name": labels.get(i) if node.kind == "param" else node.name,
                "shape": list(node.shape or []), "dtype": node.dtype, "scope": node.scope,
                "step": None if node.kind == "param" else node.step,
                "param": ",".join(dict.fromkeys(params)) or None,
                "requires_grad": bool(node.requires_grad),
                "src": node.src and node.src[0], "code": node.src and node.src[1],
                "value_norm": calls.norm(node.value), "grad_norm": calls.norm(g)})
            seen: dict[int, list] = {}
            for pos, j in enumerate(node.inputs):
                seen.setdefault(j, []).append(pos)
            for j, args in seen.items():
                edges.append({"source": new_id[j], "target": k, "arg": args[0], "args": args,
                              "grad_norm": calls.norm(self.edge_grads.get((j, i)))})
        o = new_id[out]
        attrs = {"engine": "torch", "version": torch.__version__, "schema": SCHEMA_VERSION,
                 "output": o, "loss": o if math.prod(N[out].shape or []) == 1 else None,
                 "adapter": f"tinygraph.adapters.torch {tinygraph.__version__}",
                 "notes": list(self.notes)}
        if gf is not None:
            attrs["flow"] = gf.to_attrs(new_id)
        self._graph = Graph(nodes, edges, attrs)
        return self._graph
