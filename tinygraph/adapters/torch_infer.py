"""What the PyTorch adapter infers from a recorded graph: time steps, the book's names, labels.

Flow: tinygraph.adapters.torch records nodes -> **torch_infer** (pure Python over the node
list, no torch) -> the export. Every walk is a loop over the tape order or an explicit stack.
"""
from __future__ import annotations

import re
from typing import Any, Callable

#: loss functions: output L, first argument o, target y
LOSSES = frozenset({
    "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div", "poisson_nll_loss",
    "gaussian_nll_loss", "soft_margin_loss", "multilabel_soft_margin_loss"})
#: names of recurrent states (h; g backward; s; c the LSTM cell state)
STATES = frozenset({"h", "g", "s", "c"})
_GENERIC = re.compile(r"^(weight|bias)(_[a-z]+)?(_l\d+)?(_reverse)?$")
_RNN_PARAM = re.compile(r"^(weight|bias)_(ih|hh|hr)(?:_l(\d+))?(_reverse)?$")
_LETTER = {("weight", "ih"): "U", ("weight", "hh"): "W", ("weight", "hr"): "P",
           ("bias", "ih"): "b_ih", ("bias", "hh"): "b_hh"}


class Node:
    """One recorded node. ``fn`` recomputes its value from its inputs' values; ``real`` tells
    that torch computed it (then ``value`` is torch's, and a hook collects torch's gradient)."""

    __slots__ = ("op", "kind", "name", "scope", "step", "fixed", "src", "inputs", "fn", "value",
                 "real", "shape", "dtype", "requires_grad", "module", "check", "key")

    def __init__(self, op: str, kind: str, inputs: tuple, fn: Callable | None, scope: str,
                 step: int | None, fixed: bool, src: tuple | None) -> None:
        self.op, self.kind, self.inputs, self.fn = op, kind, inputs, fn
        self.scope, self.step, self.fixed, self.src = scope, step, fixed, src
        self.name: str | None = None
        self.value: Any = None
        self.real = False
        self.shape: list | None = None
        self.dtype: str | None = None
        self.requires_grad = False
        self.module: int | None = None     # id of the module whose call made it (Linear roles)
        self.check: str | None = None      # a fused module's output: compare shadow and torch
        self.key: str | None = None        # a parameter's qualified name



def consumers(N: list, keep: list[int]) -> dict[int, list[int]]:
    """Node -> the kept nodes that read it, in tape order."""
    cons: dict[int, list[int]] = {}
    for n in keep:
        for j in dict.fromkeys(N[n].inputs):
            cons.setdefault(j, []).append(n)
    return cons

def infer_steps(N: list, keep: list[int], explicit: bool) -> None:
    """Tag the untagged: without `step(t)` anywhere, an op reading one step joins it (and a
    step-free value used at one step only); a leaf gets the step that first reads it."""
    cons = consumers(N, keep)
    if not explicit:
        mixed: set[int] = set()
        for n in keep:  # forward: an op reading one step belongs to it
            node = N[n]
            if node.kind != "op":
                continue
            steps = {N[j].step for j in node.inputs if N[j].step is not None}
            if node.fixed:  # tagged when recorded; a fused loop's stacked output mixes steps
                if node.step is None and len(steps) > 1:
                    mixed.add(n)
                continue
            if len(steps) > 1 or any(j in mixed for j in node.inputs):
                mixed.add(n)  # a sum over time, or what follows it: outside the steps
                node.step = None
            elif steps:
                node.step = steps.pop()
        for n in reversed(keep):  # backward: a step-free value used at one step only
            node = N[n]
            if node.fixed or node.kind != "op" or node.step is not None or n in mixed:
                continue
            if any(N[j].step is not None for j in node.inputs):
                continue
            steps = {N[c].step for c in cons.get(n, ())}
            if len(steps) == 1 and None not in steps:
                node.step = steps.pop()
    for n in keep:  # a leaf is tagged with the step that first reads it
        node = N[n]
        if node.op == "leaf" and node.kind != "param" and not node.fixed:
            first = cons.get(n)
            node.step = N[first[0]].step if first else node.step

def infer_names(N: list, keep: list[int], out: int) -> None:
    """The book's names where the graph shows them: L, o, y around a loss; h for what a step
    hands to the next (and h(0)); x for an input read with a parameter."""
    cons = consumers(N, keep)
    for n in keep:
        node = N[n]
        if node.op in LOSSES:
            node.name = node.name or "L"
            ins = node.inputs
            if ins and N[ins[0]].name is None and N[ins[0]].kind == "op":
                N[ins[0]].name = "o"
            if len(ins) > 1 and N[ins[1]].name is None and N[ins[1]].op == "leaf":
                N[ins[1]].name = "y"
    if N[out].name is None and N[out].shape == [] and N[out].kind == "op":
        N[out].name = "L"
    # a loop written by hand: the value a step hands to a later step is its state h
    last: dict[tuple, int] = {}
    for n in keep:
        node = N[n]
        if (node.kind == "op" and node.name is None and node.step is not None
                and node.shape and any(N[c].step is not None and N[c].step != node.step
                                       for c in cons.get(n, ()))):
            last[(node.scope, node.step)] = n
    state_uses = set()
    for n in last.values():
        N[n].name = "h"
    if last:  # the last step's h hands nothing on: it is found by its place in the step
        keys = step_keys(N, keep)
        hkeys = {keys[n] for n in last.values()}
        for n in keep:
            if N[n].name is None and N[n].kind == "op" and keys.get(n) in hkeys:
                N[n].name = "h"
    pexpr = param_exprs(N, keep)
    for n in keep:
        if N[n].name in STATES and N[n].kind == "op":
            for c in cons.get(n, ()):
                if N[c].step is not None and N[c].step != N[n].step:
                    state_uses.add(use(N, c, n, pexpr))
    for n in keep:
        node = N[n]
        if node.op != "leaf" or node.kind == "param" or node.name is not None:
            continue
        first = cons.get(n, [])
        if not first:
            continue
        c = first[0]
        if use(N, c, n, pexpr) in state_uses and N[c].step is not None:
            node.name, node.step = "h", N[c].step - 1  # the initial state h(0)
        elif (node.step is not None and N[c].name != "x"   # ids into an embedding x(t)
              and any(j in pexpr for j in N[c].inputs)):
            node.name = "x"

def param_exprs(N: list, keep: list[int]) -> dict[int, tuple]:
    """Parameters and values made from parameters alone (W.T) -> the parameters' keys."""
    found: dict[int, tuple] = {}
    for n in keep:
        node = N[n]
        if node.kind == "param":
            found[n] = (node.key or f"param{n}",)
        elif node.kind == "op" and node.inputs and all(j in found for j in node.inputs):
            found[n] = tuple(dict.fromkeys(k for j in node.inputs for k in found[j]))
    return found

def param_labels(N: list, keep: list[int], explicit: set) -> dict[int, str]:
    """Parameter node -> its label: the caller's name, the book's letter, or a short label.

    `explicit` holds the keys the caller named (a mapping passed to `record`).
    """
    labels: dict[int, str] = {}
    roles = Roles(N, keep)
    by_module: dict[str, dict] = {}
    for n in keep:
        node = N[n]
        if node.kind != "param":
            continue
        key = node.key or f"param{n}"
        attr = key.rpartition(".")[2]
        mod = key.rpartition(".")[0]
        if not _GENERIC.match(attr) or key in explicit:
            labels[n] = attr  # the name its author gave (U, W, b or a mapping key)
            continue
        m = _RNN_PARAM.match(attr)
        if m:
            kind, which, layer, _ = m.groups()
            labels[n] = _LETTER[(kind, which)] + (str(int(layer) + 1) if layer and
                                                  int(layer) else "")
            continue
        by_module.setdefault(mod, {})[attr] = n
    taken: dict[tuple, list] = {}
    for mod, params in by_module.items():
        w = params.get("weight")
        letters = None
        if w is not None and len(params) <= 2:
            role = roles.of(w)
            if role is not None:
                letters = {"V": ("V", "c"), "U": ("U", "b"), "W": ("W", "b"),
                           "E": ("E", "b")}[role]
        short = mod.rpartition(".")[2] or mod
        for attr, n in params.items():
            if letters and attr in ("weight", "bias"):
                label = letters[0] if attr == "weight" else letters[1]
                taken.setdefault((N[n].scope, label), []).append(n)
            tail = {"weight": "W", "bias": "b"}.get(attr, attr)
            labels[n] = f"{short}.{tail}" if short else tail
    for (sc, label), ns in taken.items():
        mods = {N[n].key.rpartition(".")[0] for n in ns}
        if len(mods) == 1 and len(ns) <= 2:  # one module has the role: it gets the letter
            for n in ns:
                labels[n] = label
    return labels


class Roles:
    """The role of a generic weight in the recurrence, read from the named tensors around the
    ops that read it: x -> h is U, h(t-1) -> h(t) is W, h -> o / L is V."""

    def __init__(self, N: list, keep: list[int]) -> None:
        self.N = N
        self.cons: dict[int, list[int]] = {}
        for n in keep:
            for j in dict.fromkeys(N[n].inputs):
                self.cons.setdefault(j, []).append(n)

    def _sources(self, n: int) -> set[int]:
        N, todo, seen = self.N, [n], {n}
        found: set[int] = set()
        while todo:
            m = todo.pop()
            for j in N[m].inputs:
                if j in seen or N[j].kind == "param":
                    continue
                seen.add(j)
                (found.add if N[j].name else todo.append)(j)
        return found

    def _targets(self, n: int) -> set[int]:
        N, found, todo, seen = self.N, set(), [n], {n}
        while todo:
            m = todo.pop()
            if N[m].name and m != n:
                found.add(m)
                continue
            for c in self.cons.get(m, ()):
                if c not in seen:
                    seen.add(c)
                    todo.append(c)
        if N[n].name:
            found.add(n)
        return found

    def of(self, p: int) -> str | None:
        N = self.N
        roles = set()
        for r in self.cons.get(p, [])[:16]:  # the first steps tell; the rest repeat them
            if N[r].op == "embedding":
                roles.add("E")
                continue
            src = [N[j] for j in self._sources(r)]
            dst = [N[j] for j in self._targets(r)]
            if not src or not dst:
                return None
            to_state = any(d.name in STATES for d in dst)
            if to_state and all(s.name in STATES and s.step is not None and any(
                    d.step is not None and d.step != s.step for d in dst) for s in src):
                roles.add("W")
            elif to_state and all(s.name == "x" for s in src):
                roles.add("U")
            elif not to_state and all(s.name in STATES for s in src):
                roles.add("V")
            else:
                return None
        return roles.pop() if len(roles) == 1 else None


def step_keys(N: list, keep: list[int]) -> dict[int, tuple]:
    """Each tagged op's place in its step: (scope, op, parameters read, how many such before it
    in the step), the same at every step for a loop (as viz folds it)."""
    count: dict[tuple, int] = {}
    keys: dict[int, tuple] = {}
    for n in keep:
        node = N[n]
        if node.kind != "op" or node.step is None:
            continue
        base = (node.scope, node.op, tuple(N[j].key for j in node.inputs
                                           if N[j].kind == "param"))
        k = count.get((node.step,) + base, 0)
        count[(node.step,) + base] = k + 1
        keys[n] = base + (k,)
    return keys


def use(N: list, c: int, n: int, pexpr: dict) -> tuple:
    """How op `c` reads `n`: its scope, op, argument position and the parameters beside it
    (read directly or through W.T), so h(t-1) @ W.T and x(t) @ U.T are told apart."""
    node = N[c]
    pos = node.inputs.index(n)
    beside = sorted({k for j in node.inputs if j != n for k in pexpr.get(j, ())})
    return (node.scope, node.op, pos, tuple(beside))
