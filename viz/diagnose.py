"""Gradient flow through time, as numbers: per-step series and a vanishing/exploding verdict.

Flow: recorded graph with ``grad_norm`` (after ``backward(keep_grads=True)``) -> viz.fold ->
**viz.diagnose** -> a :class:`Report` (printed by the CLI and the gallery) and viz.charts.

The recurrent variables are the roles of the folded variable-level graph that a delay edge
enters (h, g, s, the o of an output recurrence). For each, ‖∂L/∂v(t)‖ is read per step; the
*far end* is the step the gradient reaches last (the first step for a forward loop, the last
for a backward one). Vanishing: the far end is below ``VANISH_RATIO`` times the series' maximum.
Exploding: a norm above ``EXPLODE_NORM``, or the far end above ``1 / VANISH_RATIO`` times the
near end.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from .fold import fold
from .grads import EXPLODE_NORM, VANISH_RATIO
from .schema import is_finite, load, sort_key
from .style import fmt


@dataclass(frozen=True)
class Series:
    """‖∂L/∂v(t)‖ for one recurrent variable v, by step."""

    variable: str            # "h" or "scope/h" when the name is ambiguous
    scope: str
    direction: int           # +1: v(t-1) -> v(t); -1: v(t+1) -> v(t) (backward RNN)
    steps: tuple[int, ...]
    norms: tuple[float, ...]

    @property
    def far(self) -> float:
        """Norm at the step the gradient reaches last."""
        return self.norms[0] if self.direction > 0 else self.norms[-1]

    @property
    def near(self) -> float:
        return self.norms[-1] if self.direction > 0 else self.norms[0]

    def gains(self) -> list[float]:
        """Per-step gain ‖∂L/∂v(t)‖ / ‖∂L/∂v(t+1)‖ along the direction of the loop."""
        seq = list(self.norms) if self.direction > 0 else list(reversed(self.norms))
        return [a / b if b else math.inf for a, b in zip(seq, seq[1:])
                if is_finite(a) and is_finite(b)]

    def mean_gain(self) -> float | None:
        """Geometric mean of the per-step gains (< 1: shrinking back through time)."""
        logs = [math.log(g) for g in self.gains() if g > 0 and math.isfinite(g)]
        return math.exp(sum(logs) / len(logs)) if logs else None


@dataclass(frozen=True)
class Report:
    """What :func:`diagnose` found; ``print(report)`` reads as a short paragraph."""

    verdict: str  # "vanishing" | "exploding" | "non-finite" | "healthy" | "no gradients"
    reasons: tuple[str, ...]
    series: tuple[Series, ...]
    first_nonfinite: dict | None
    largest: tuple[tuple[str, float], ...]
    smallest: tuple[tuple[str, float], ...]
    thresholds: dict = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"gradient flow: {self.verdict.upper()}"]
        lines += [f"  - {r}" for r in self.reasons]
        for s in self.series:
            gain = s.mean_gain()
            top = max((x for x in s.norms if is_finite(x)), default=math.nan)
            lines.append(
                f"  {s.variable}: ‖∂L/∂{s.variable.split('/')[-1]}(t)‖ {fmt(s.far)} at the far "
                f"end (t={s.steps[0] if s.direction > 0 else s.steps[-1]}) .. {fmt(top)}"
                f" max; mean gain per step {fmt(gain)}")
        if self.first_nonfinite:
            f = self.first_nonfinite
            lines.append(f"  first non-finite gradient: {f['op']} (node {f['node']}) at "
                         f"{f['scope'] or 'top level'} step {f['step']}")
        if self.largest:
            lines.append("  largest: " + ", ".join(f"{k} {fmt(v)}" for k, v in self.largest))
            lines.append("  smallest: " + ", ".join(f"{k} {fmt(v)}" for k, v in self.smallest))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """Notebooks show the report as text under a coloured verdict (viz.html)."""
        from .html import report_html
        return report_html(self)


def recurrent_series(graph: Any, folded: nx.DiGraph | None = None) -> list[Series]:
    """‖∂L/∂v(t)‖ by step for every recurrent variable of the graph (see module docstring).

    Parameters
    ----------
    graph : networkx.DiGraph, object with ``to_networkx()``, or path
        Recorded after ``loss.backward(keep_grads=True)``.
    folded : networkx.DiGraph, optional
        The graph's variable-level :func:`viz.fold.fold`, when already computed.

    Returns
    -------
    list of Series
        One per role that a delay edge enters, in role order; ``variable`` is the name, or
        ``scope/name`` when two recurrent roles share a name. Several members at one step (the
        nodes of one height of a tree recorded per node) give one norm, the norm of them all.

    Examples
    --------
    >>> [s.variable for s in recurrent_series(G)]          # doctest: +SKIP
    ['h', 'g']
    """
    G = load(graph)
    F = fold(G, level="variable") if folded is None else folded
    found = []
    for r in sorted(F):
        lags = [lag for u, _, e in F.in_edges(r, data=True) if e["delay"] for lag in e["lags"]]
        if not lags:
            continue
        d = F.nodes[r]
        members = sorted((G.nodes[m]["step"], G.nodes[m]["grad_norm"]) for m in d["members"]
                         if G.nodes[m]["step"] is not None)
        pairs = _per_step([(s, float(g)) for s, g in members if g is not None])
        if pairs:
            found.append((d, 1 if max(lags) > 0 else -1, pairs))
    names = [d["name"] for d, _, _ in found]
    return [Series(d["name"] if names.count(d["name"]) == 1 else f"{d['scope']}/{d['name']}",
                   d["scope"], direction, tuple(s for s, _ in pairs),
                   tuple(g for _, g in pairs)) for d, direction, pairs in found]


def _per_step(pairs: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """One norm per step: several members of one step (the nodes of one height of a tree
    recorded per node) count as one vector, sqrt(sum of squares), as when batched."""
    out: list[tuple[int, float]] = []
    for s, g in pairs:  # sorted by step
        if out and out[-1][0] == s:
            out[-1] = (s, math.hypot(out[-1][1], g))
        else:
            out.append((s, g))
    return out


def diagnose(graph: Any, vanish_ratio: float = VANISH_RATIO,
             explode_norm: float = EXPLODE_NORM) -> Report:
    """Judge how gradients flow back through time in a recorded graph.

    Parameters
    ----------
    graph : networkx.DiGraph, object with ``to_networkx()``, or path
        Recorded after ``loss.backward(keep_grads=True)`` so nodes carry ``grad_norm``.
    vanish_ratio : float
        Far-end norm below this fraction of the series maximum means vanishing.
    explode_norm : float
        Any recurrent gradient norm above this means exploding.

    Returns
    -------
    Report
        ``verdict``, the ``reasons`` (the figures behind it), the per-variable ``series``,
        ``first_nonfinite`` (op, scope, step and id of the node where a NaN/inf gradient
        first appeared in the backward sweep), the ``largest`` and ``smallest`` roles by median
        gradient norm.

    Examples
    --------
    >>> print(diagnose(G))                              # doctest: +SKIP
    gradient flow: VANISHING
      - h: ‖∂L/∂h‖ at the far end is 3.1e-09 of its maximum (< 0.0001)
    """
    G = load(graph)
    if all(d["grad_norm"] is None for _, d in G.nodes(data=True)):
        return Report("no gradients", ("no node has grad_norm: run "
                                       "loss.backward(keep_grads=True) before tracing",),
                      (), None, (), (), {})
    F = fold(G, level="variable")
    series = recurrent_series(G, F)
    reasons: list[str] = []
    verdict = "healthy"
    bad = _first_nonfinite(G)
    if bad is not None:
        verdict = "non-finite"
        reasons.append(f"non-finite gradient (NaN/inf) first at {bad['op']} in "
                       f"{bad['scope'] or 'top level'}, step {bad['step']}")
    for s in series:
        finite = [x for x in s.norms if is_finite(x)]
        if not finite:
            continue
        top = max(finite)
        if top > explode_norm or (is_finite(s.far) and s.near > 0
                                  and s.far / s.near > 1 / vanish_ratio):
            verdict = "exploding" if verdict == "healthy" else verdict
            reasons.append(f"{s.variable}: ‖∂L/∂{s.variable.split('/')[-1]}‖ reaches "
                           f"{fmt(top)} (far end {fmt(s.far)}, near end {fmt(s.near)})")
        elif is_finite(s.far) and top > 0 and s.far / top < vanish_ratio:
            verdict = "vanishing" if verdict == "healthy" else verdict
            reasons.append(f"{s.variable}: ‖∂L/∂{s.variable.split('/')[-1]}‖ at the far end is "
                           f"{fmt(s.far / top)} of its maximum (< {vanish_ratio:g}) over "
                           f"{len(s.steps)} steps; mean gain per step {fmt(s.mean_gain())}")
    if verdict == "healthy":
        reasons.append("every recurrent gradient stays within "
                       f"[{vanish_ratio:g} × max, {explode_norm:g}]" if series else
                       "no recurrent variable (no delay edge): nothing flows through time")
    largest, smallest = _extremes(G, F)
    return Report(verdict, tuple(reasons), tuple(series), bad, largest, smallest,
                  {"vanish_ratio": vanish_ratio, "explode_norm": explode_norm})


def _first_nonfinite(G: nx.DiGraph) -> dict | None:
    """The node where backward first produced a NaN/inf: the highest tape id whose gradient is
    non-finite while every consumer's gradient is finite (backward runs in reverse tape order)."""
    def bad(n: Any) -> bool:
        g = G.nodes[n]["grad_norm"]
        return g is not None and not is_finite(g)
    origins = [n for n in G if bad(n) and not any(bad(c) for c in G.successors(n))]
    if not origins:
        return None
    n = max(origins, key=sort_key)
    d = G.nodes[n]
    return {"node": n, "op": d["op"], "name": d["name"], "scope": d["scope"], "step": d["step"]}


def _extremes(G: nx.DiGraph, F: nx.DiGraph, k: int = 3) -> tuple[tuple, tuple]:
    out = G.graph.get("loss", G.graph.get("output"))
    meds = []
    for r, d in F.nodes(data=True):
        if d["grad_stats"] is None or out in d["members"]:
            continue
        label = d["name"] if d["scope"] == "" else f"{d['scope']}/{d['name']}"
        meds.append((label, d["grad_stats"][1]))
    meds.sort(key=lambda x: (-x[1], x[0]))
    return tuple(meds[:k]), tuple(sorted(meds, key=lambda x: (x[1], x[0]))[:k])
