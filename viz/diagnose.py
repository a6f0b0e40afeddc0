"""Gradient flow through time, as numbers: one verdict, and every mark on the pictures, from here.

Flow: recorded graph (``grad_norm`` after ``backward(keep_grads=True)``; the ``flow`` graph
attribute from ``tg.trace(loss, flow=tg.flow(...))``) -> viz.fold -> **viz.diagnose** -> a
:class:`Report`, which viz.grads (overlay marks), viz.charts and viz.flowmap read.

A *recurrent variable* is a role of the folded graph that carries state: the source of a delay
edge that comes back to it (h -> h, h -> z -> h, g(t+1) -> g(t)). A delay edge from an input
(teacher forcing feeds the true y(t-1) into h(t)) is no recurrence: no gradient flows through
time there, and the report says so instead of measuring a gain.

For each recurrent variable, :mod:`viz.horizon` compares the long-range part of the gradient
with the local part of the same variable, never with the loss node: the *effective horizon* is
how many steps back the flow from one loss term L(τ) stays at or above ``VANISH_RATIO`` of its
local value. With a loss at every step and no exported flow, the total gradient mixes local and
long-range terms and the report says it cannot judge (and how to export the flow).

Verdicts: ``vanishing`` (horizon shorter than the sequence), ``exploding`` (the ratio grows past
1 / VANISH_RATIO back through time, or a norm above ``EXPLODE_NORM``), ``non-finite``,
``healthy``, ``undetermined``, ``no recurrence``, ``no gradients``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any

import networkx as nx

from .fold import fold
from .levels import choose_level
from .horizon import (EXPLODE_NORM, VANISH_RATIO, Finding, Series, flow_attrs, judge,
                      match_flow, per_step, role_name)
from .schema import is_finite, output_node, sort_key
from .style import fmt

__all__ = ["EXPLODE_NORM", "VANISH_RATIO", "Finding", "Report", "Series", "diagnose",
           "recurrent_roles", "recurrent_series"]

ADVICE = {
    "vanishing": "long-range dependencies beyond the horizon get almost no gradient: shorten the "
                 "horizon the task needs (or train on shorter windows), use a gated cell "
                 "(LSTM/GRU), or initialise W orthogonal / scale it so ρ(W) is close to 1",
    "exploding": "clip the gradient norm (tinygraph.optim.clip_grad_norm), lower the learning "
                 "rate, or scale W down so ρ(W) ≤ 1",
    "saturated": "many units saturate (|h| > 0.99, tanh' < 0.02): scale inputs or weights down",
    "undetermined": "export the per-loss-term flow: g = tg.trace(loss, flow=tg.flow(terms, "
                    "states)) with the loss terms L(t) and the states h(t)",
}




@dataclass(frozen=True)
class Report:
    """What :func:`diagnose` found; ``print(report)`` reads as a short paragraph.

    ``findings`` are per recurrent variable; :meth:`status` gives the mark of one node, the
    one the overlays draw.
    """

    verdict: str
    reasons: tuple[str, ...]
    series: tuple[Series, ...]
    first_nonfinite: dict | None
    largest: tuple[tuple[str, float], ...]
    smallest: tuple[tuple[str, float], ...]
    thresholds: dict = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    advice: tuple[str, ...] = ()

    def status(self, scope: str, name: str | None, step: int | None) -> str | None:
        """``vanishing`` / ``exploding`` for a state beyond the horizon (or growing), else None."""
        for f in self.findings:
            if f.scope != scope or f.name != name:
                continue
            if step is None and f.marks:   # a folded role: the variable's own verdict
                return f.verdict if f.verdict in ("vanishing", "exploding") else None
            if step in f.marks:
                return f.marks[step]
        return None

    def __str__(self) -> str:
        lines = [f"gradient flow: {self.verdict.upper()}"]
        lines += [f"  - {r}" for r in self.reasons]
        if self.first_nonfinite:
            f = self.first_nonfinite
            lines.append(f"  first non-finite gradient: {f['op']} (node {f['node']}) at "
                         f"{f['scope'] or 'top level'} step {f['step']}")
        lines += [f"  try: {a}" for a in self.advice]
        if self.largest:
            lines.append("  largest ‖∂L/∂·‖ (median over steps): " +
                         ", ".join(f"{k} {fmt(v)}" for k, v in self.largest))
            lines.append("  smallest: " + ", ".join(f"{k} {fmt(v)}" for k, v in self.smallest))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """Notebooks show the report as a coloured verdict over its reasons and advice."""
        return report_html(self)


def recurrent_roles(F: nx.DiGraph) -> list[tuple[Any, int]]:
    """``[(role, direction)]``: roles that carry state (a delay edge leaves them and comes back).

    The direction is +1 for a loop forward in time, -1 for a backward chain (g(t+1) -> g(t)).
    """
    found: dict[Any, int] = {}
    for u, v, e in F.edges(data=True):
        if not e["delay"] or e.get("detached"):
            continue
        if u == v or nx.has_path(F, v, u):
            found.setdefault(u, 1 if max(e["lags"]) > 0 else -1)
    return sorted(found.items(), key=lambda x: sort_key(x[0]))


def recurrent_series(graph: Any, folded: nx.DiGraph | None = None) -> list[Series]:
    """‖∂L/∂v(t)‖ by step for every recurrent variable of the graph (see module docstring).

    Parameters
    ----------
    graph : networkx.DiGraph, object with ``to_networkx()``, or path
        Recorded after ``loss.backward(keep_grads=True)``.
    folded : networkx.DiGraph, optional
        The graph's :func:`viz.fold.fold` (at the level :func:`diagnose` uses), when computed.

    Returns
    -------
    list of Series
        One per recurrent role (it carries state: :func:`recurrent_roles`), in role order;
        ``variable`` is the name, or ``scope/name`` when two recurrent roles share a name (an
        unnamed state is called by its op). Several members at one step (the nodes of one
        height of a tree recorded per node) give one norm, the norm of them all.

    Examples
    --------
    >>> [s.variable for s in recurrent_series(G)]          # doctest: +SKIP
    ['h', 'g']
    """
    G, level, _ = choose_level(graph, "variable")
    F = fold(G, level=level) if folded is None else folded
    return [s for s, _ in _series(G, F)]


def _series(G: nx.DiGraph, F: nx.DiGraph) -> list[tuple[Series, Any]]:
    from .timeline import timelines
    tl = timelines(G)
    found = []
    for r, direction in recurrent_roles(F):
        d = F.nodes[r]
        steps = [G.nodes[m]["step"] for m in d["members"] if G.nodes[m]["step"] is not None]
        unit = "height" if len(steps) > len(set(steps)) else "step"
        pairs = per_step(sorted((G.nodes[m]["step"], float(G.nodes[m]["grad_norm"]))
                                 for m in d["members"] if G.nodes[m]["step"] is not None
                                 and G.nodes[m]["grad_norm"] is not None))
        found.append((d, direction, pairs, unit, r))
    names = [role_name(d) for d, *_ in found]
    out = []
    for d, direction, pairs, unit, r in found:
        label = role_name(d) if names.count(role_name(d)) == 1 else f"{d['scope']}/{role_name(d)}"
        out.append((Series(label, d["scope"], direction, tuple(s for s, _ in pairs),
                           tuple(g for _, g in pairs), tl.get(d["scope"], 0), unit), r))
    return out



def diagnose(graph: Any, vanish_ratio: float = VANISH_RATIO,
             explode_norm: float = EXPLODE_NORM) -> Report:
    """Judge how gradients flow back through time in a recorded graph.

    Parameters
    ----------
    graph : networkx.DiGraph, object with ``to_networkx()``, or path
        Recorded after ``loss.backward(keep_grads=True)``; with a loss at every step, traced
        with ``tg.trace(loss, flow=tg.flow(terms, states))`` so the terms can be told apart.
    vanish_ratio : float
        The horizon ends where the flow from one loss term falls below this fraction of its
        local value (the state it reads first).
    explode_norm : float
        Any recurrent gradient norm above this means exploding.

    Returns
    -------
    Report
        ``verdict``, the ``reasons`` (the figures behind it), per-variable ``findings``
        (horizon, decay, spectra, marks), ``advice``, the per-variable total ``series``,
        ``first_nonfinite`` (op, scope, step and id of the node where a NaN/inf gradient first
        appeared in the backward sweep), the ``largest`` and ``smallest`` roles by median
        gradient norm.

    Examples
    --------
    >>> print(diagnose(G))                              # doctest: +SKIP
    gradient flow: VANISHING
      - h: the flow from L(50) falls below 0.001 of its local value after 12 steps ...
    """
    G, level, _ = choose_level(graph, "variable")
    flows = flow_attrs(G)
    thresholds = {"vanish_ratio": vanish_ratio, "explode_norm": explode_norm}
    if not flows and all(d["grad_norm"] is None for _, d in G.nodes(data=True)):
        return Report("no gradients", ("no node has grad_norm: run "
                                       "loss.backward(keep_grads=True) before tracing",),
                      (), None, (), (), thresholds)
    F = fold(G, level=level)
    pairs = _series(G, F)
    out = output_node(G)
    findings = []
    for s, role in pairs:
        fv = match_flow(flows, F.nodes[role], G)
        findings.append(judge(G, s, F.nodes[role], fv, out, vanish_ratio, explode_norm))
    reasons: list[str] = []
    bad = _first_nonfinite(G)
    verdicts = [f.verdict for f in findings]
    if bad is not None:
        reasons.append(f"non-finite gradient (NaN/inf) first at {bad['op']} in "
                       f"{bad['scope'] or 'top level'}, step {bad['step']}")
    reasons += [f.summary() for f in findings]
    if level == "op" and findings:
        reasons.append("no named tensors: the state is the op the folding finds carried from "
                       "step to step; name it (tensor.named('h')) for the book's labels")
    verdict = next((v for v in ("non-finite", "exploding", "vanishing", "undetermined",
                                "healthy") if v in verdicts or (v == "non-finite" and bad)),
                   None)
    if verdict is None:
        verdict = "no recurrence"
        reasons.append(_no_recurrence(G, F, level))
        if G.graph.get("inference_note"):  # what viz.infer guessed or could not decide
            reasons.append(G.graph["inference_note"])
    advice = [ADVICE[v] for v in ("exploding", "vanishing", "undetermined") if v in verdicts]
    if any((f.spectra.get("saturation_max") or 0) > 0.5 for f in findings):
        advice.append(ADVICE["saturated"])
    largest, smallest = _extremes(G, F)
    return Report(verdict, tuple(reasons), tuple(s for s, _ in pairs), bad, largest, smallest,
                  thresholds, tuple(findings), tuple(advice))


def _no_recurrence(G: nx.DiGraph, F: nx.DiGraph, level: str) -> str:
    """Why nothing flows through time: no steps, teacher forcing, or no names."""
    delays = [(u, v) for u, v, e in F.edges(data=True) if e["delay"]]
    if delays:
        src = sorted({role_name(F.nodes[u]) for u, _ in delays})
        dst = sorted({role_name(F.nodes[v]) for _, v in delays})
        return (f"no state depends on its own previous value: the only links between steps go "
                f"from {', '.join(src)} to {', '.join(dst)} (an input such as the true y(t−1) "
                f"under teacher forcing), so no gradient flows through time and there is no "
                f"gain to measure")
    if not any(d["step"] is not None for _, d in G.nodes(data=True)):
        return ("no node carries a step: tag the loop's steps with tg.step(t) (and name the "
                "state with .named('h')) so the recurrence can be found")
    hint = " (the graph has no named tensors: name the state with .named('h'))" \
        if level == "op" else ""
    return "no recurrent variable (no state feeds a later step)" + hint



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
    roles = [d for _, d in F.nodes(data=True)
             if d["grad_stats"] is not None and out not in d["members"]]
    names = [role_name(d) for d in roles]
    meds = []
    for d in roles:  # the short name, as the findings say it, unless two roles share it
        label = role_name(d) if names.count(role_name(d)) == 1 else f"{d['scope']}/{role_name(d)}"
        meds.append((label, d["grad_stats"][1]))
    meds.sort(key=lambda x: (-x[1], x[0]))
    return tuple(meds[:k]), tuple(sorted(meds, key=lambda x: (x[1], x[0]))[:k])


def report_html(report: Any) -> str:
    """HTML for a gradient-flow report (``viz.diagnose``'s Report shows itself with this).

    The verdict is a coloured heading; the reasons and what to try follow as a list, the same
    lines ``print(report)`` prints.
    """
    verdict = str(getattr(report, "verdict", "report"))
    colour = {"healthy": "#2e7d32", "vanishing": "#2171b5", "exploding": "#e69138",
              "non-finite": "#c62828"}.get(verdict, "#555555")
    items = "".join(f"<li>{escape(str(r))}</li>" for r in getattr(report, "reasons", ()))
    tries = "".join(f"<li><i>try</i>: {escape(str(a))}</li>"
                    for a in getattr(report, "advice", ()))
    return (f'<div><b style="color:{colour}">gradient flow: {escape(verdict.upper())}'
            f"</b><ul>{items}{tries}</ul></div>")
