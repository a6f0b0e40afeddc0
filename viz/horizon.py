"""The effective horizon of one recurrent variable: how far back one loss term's gradient reaches.

Flow: recorded graph (+ the ``flow`` attribute of ``tg.trace(loss, flow=tg.flow(...))``) and its
folded roles -> **viz.horizon** -> :class:`Finding` per recurrent variable -> viz.diagnose (the
verdict), viz.grads (marks), viz.charts and viz.flowmap (pictures).

The flow of one loss term L(τ), ‖∂L(τ)/∂h(t)‖, is divided by its value at the state L(τ) reads
first (its *local* value). The effective horizon is how many steps back that ratio stays at or
above ``VANISH_RATIO``; the decay per step is the least-squares slope of its logarithm. The flow
of one term comes from the exported per-loss-term flow (the term that reaches furthest back),
or from the total gradient ‖∂L/∂h(t)‖ when the loss reaches the variable at a single step (a
loss at the end; an encoder read only through its context C). Otherwise it cannot be told
apart from the local terms: the finding says so ("mixed").
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from .schema import is_finite
from .style import fmt

#: the horizon ends where the flow from L(τ) falls below this fraction of its local value
VANISH_RATIO = 1e-3
#: a recurrent gradient norm above this is exploding, whatever the ratios
EXPLODE_NORM = 1e4


@dataclass(frozen=True)
class Series:
    """‖∂L/∂v(t)‖ (the total gradient) for one recurrent variable v, by step."""

    variable: str            # "h" or "scope/h" when the name is ambiguous
    scope: str
    direction: int           # +1: v(t-1) -> v(t); -1: v(t+1) -> v(t) (backward RNN)
    steps: tuple[int, ...]
    norms: tuple[float, ...]
    timeline: int = 0        # series on one time axis share a timeline id
    unit: str = "step"       # "height" for a tree recorded per node

    @property
    def far(self) -> float:
        """Norm at the step the gradient reaches last."""
        return self.norms[0] if self.direction > 0 else self.norms[-1]

    @property
    def near(self) -> float:
        return self.norms[-1] if self.direction > 0 else self.norms[0]


@dataclass(frozen=True)
class Finding:
    """What the report found for one recurrent variable (see module docstring).

    ``profile`` holds ``(step, ratio)`` from the local step back along the recurrence: the flow
    from the loss term ``loss`` at that step over its local value. ``marks`` maps steps to
    ``vanishing`` / ``exploding``, the marks the overlays draw.
    """

    variable: str
    name: str
    scope: str
    direction: int
    source: str                       # "flow" | "single loss term" | "mixed"
    loss: str                         # the loss term the profile follows, e.g. "L(50)"
    profile: tuple[tuple[int, float], ...]
    horizon: int | None               # steps back with ratio >= VANISH_RATIO
    span: int                         # steps back the profile covers
    decay: float | None               # geometric ratio per step back
    verdict: str
    spectra: dict = field(default_factory=dict)
    marks: dict = field(default_factory=dict)
    unit: str = "step"

    def summary(self) -> str:
        """One line: the variable, its horizon, its decay and the spectra behind them."""
        u = self.unit
        if self.source == "mixed":
            return (f"{self.variable}: a loss at every {u} mixes local and long-range gradient "
                    f"and no per-loss-term flow was exported: cannot judge")
        if self.verdict == "non-finite":
            return f"{self.variable}: non-finite flow from {self.loss}"
        if self.verdict == "exploding" and self.marks:
            first = min(abs(st - self.profile[0][0]) for st, m in self.marks.items()
                        if m == "exploding")
            top = max(r for _, r in self.profile)
            reach = (f"grows back through time: above {1 / VANISH_RATIO:g} × its local value "
                     f"{first} {u}s back, {fmt(top)} × at most")
        elif self.horizon is None or self.horizon >= self.span:
            reach = (f"stays above {VANISH_RATIO:g} of its local value over all {self.span} "
                     f"{u}s back")
        else:
            reach = (f"falls below {VANISH_RATIO:g} of its local value after {self.horizon} "
                     f"{u}s (horizon {self.horizon} of {self.span})")
        far = self.profile[-1][1] if self.profile else math.nan
        text = (f"{self.variable}: the flow from {self.loss} {reach}; factor per {u} back "
                f"{fmt(self.decay)}, at the far end {fmt(far)} of local")
        sp = self.spectra
        bits = []
        if sp.get("sigma") is not None:
            bits.append(f"σ_max(∂{self.name}(t)/∂{self.name}(t−1)) {fmt(sp['sigma'])} (geo. mean)")
        if sp.get("sigma_window") is not None:
            bits.append(f"over {sp['window']} {u}s {fmt(sp['sigma_window'])}")
        if sp.get("rho") is not None:
            bits.append(f"ρ({sp.get('weight') or 'W'}) {fmt(sp['rho'])}")
        if sp.get("saturation") is not None:
            bits.append(f"saturated units {sp['saturation']:.0%}")
        return text + ("; " + ", ".join(bits) if bits else "")


def role_name(d: dict) -> str:
    return d["name"] or d["op"]


def per_step(pairs: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """One norm per step: several members of one step (the nodes of one height of a tree
    recorded per node) count as one vector, sqrt(sum of squares), as when batched."""
    out: list[tuple[int, float]] = []
    for s, g in pairs:  # sorted by step
        if out and out[-1][0] == s:
            out[-1] = (s, math.hypot(out[-1][1], g))
        else:
            out.append((s, g))
    return out



def flow_attrs(G: nx.DiGraph) -> list[dict]:
    f = G.graph.get("flow")
    return list(f.get("variables", [])) if isinstance(f, dict) else []


def match_flow(flows: list[dict], d: dict, G: nx.DiGraph) -> dict | None:
    """The exported flow variable whose states are this role's members (else same scope/name)."""
    members = set(d["members"])
    for fv in flows:
        if any(n in members for n in fv.get("nodes") or [] if n is not None):
            return fv
    for fv in flows:
        if fv.get("scope") == d["scope"] and fv.get("name") == d["name"]:
            return fv
    return None


def flow_table(fv: dict) -> tuple[list, list, list[list[float]]]:
    """(steps, loss steps, F) of one exported flow variable, one column per step: the states of
    one step (the nodes of one height of a tree) count as one vector, as in :func:`_per_step`."""
    steps = sorted(set(fv["steps"]))
    col = {st: k for k, st in enumerate(steps)}
    M = []
    for row in fv["F"]:
        acc = [0.0] * len(steps)
        for st, x in zip(fv["steps"], row):
            x = math.nan if x is None else float(x)
            acc[col[st]] = math.hypot(acc[col[st]], x)
        M.append(acc)
    return steps, list(fv["loss_steps"]), M


def _injection_steps(G: nx.DiGraph, members: set, out: Any) -> set:
    """Steps at which the loss reads the variable other than through its own later states."""
    if out is None:
        return set()
    reach, todo = {out}, [out]
    while todo:   # nodes that reach the output without passing through a member
        n = todo.pop()
        for p in G.predecessors(n):
            if p not in reach and p not in members and G.edges[p, n].get("grad_norm") != 0:
                reach.add(p)
                todo.append(p)
    # an edge that carried no gradient (rows of a table of states the loss never reads) is no
    # way in; an edge of unknown norm counts as one
    return {G.nodes[m]["step"] for m in members
            if m == out or any(c in reach and G.edges[m, c].get("grad_norm") != 0
                               for c in G.successors(m))}


def judge(G: nx.DiGraph, s: Series, d: dict, fv: dict | None, out: Any, thr: float,
             explode: float) -> Finding:
    name = role_name(d)
    spectra: dict = {}
    if fv is not None:
        steps, loss_steps, M = flow_table(fv)
        per_row = [[(st, x) for st, x in zip(steps, row) if x != 0 or not is_finite(x)]
                   for row in M]
        k = max(range(len(M)), key=lambda i: (len(per_row[i]), i if s.direction > 0 else -i))
        series = per_row[k]
        ls = loss_steps[k]
        loss = f"L({ls})" if ls is not None else "L"
        source = "flow"
        spectra = _spectra(fv)
    else:
        inj = _injection_steps(G, set(d["members"]), out)
        series = list(zip(s.steps, s.norms))
        if len(inj) != 1:
            return Finding(s.variable, name, d["scope"], s.direction, "mixed", "L", (), None,
                           0, None, "undetermined", unit=s.unit)
        source = "single loss term"
        loss = "L" if out is None else f"{G.nodes[out]['name'] or 'L'}"
    span, ratios = _profile(series, s.direction)
    horizon, marks, verdict = None, {}, "healthy"
    for dist, (st, r) in enumerate(ratios):
        if not is_finite(r):
            verdict = "non-finite"
            break
        if r < thr:
            marks[st] = "vanishing"
        elif r > 1 / thr:
            marks[st] = "exploding"
        if horizon is None and r < thr:
            horizon = dist - 1
    if verdict != "non-finite":
        horizon = span if horizon is None else horizon
        if any(m == "exploding" for m in marks.values()) or any(
                is_finite(x) and x > explode for x in s.norms):
            verdict = "exploding"
        elif horizon < span:
            verdict = "vanishing"
    decay = _decay([r for _, r in ratios])
    return Finding(s.variable, name, d["scope"], s.direction, source, loss, tuple(ratios),
                   horizon, span, decay, verdict, spectra, marks, s.unit)


def _profile(series: list[tuple[int, float]], direction: int
             ) -> tuple[int, list[tuple[int, float]]]:
    """(span, [(step, ratio to local)]) from the local step back along the recurrence."""
    ordered = sorted(series, key=lambda x: -x[0] * direction)  # the local step first
    if not ordered or not ordered[0][1] or not is_finite(ordered[0][1]):
        return 0, []
    local = ordered[0][1]
    return len(ordered) - 1, [(st, x / local) for st, x in ordered]


def _decay(ratios: list[float]) -> float | None:
    """Least-squares slope of log ratio against steps back, as a factor per step."""
    pts = [(k, math.log(r)) for k, r in enumerate(ratios) if is_finite(r) and r > 0]
    if len(pts) < 2:
        return None
    mk = sum(k for k, _ in pts) / len(pts)
    ml = sum(v for _, v in pts) / len(pts)
    den = sum((k - mk) ** 2 for k, _ in pts)
    return math.exp(sum((k - mk) * (v - ml) for k, v in pts) / den) if den else None


def _geomean(xs: list) -> float | None:
    logs = [math.log(x) for x in xs if is_finite(x) and x > 0]
    return math.exp(sum(logs) / len(logs)) if logs else None


def _spectra(fv: dict) -> dict:
    sat = [x for x in fv.get("saturation") or [] if is_finite(x)]
    return {"sigma": _geomean(fv.get("sigma") or []),
            "sigma_window": _geomean(fv.get("sigma_window") or []),
            "window": fv.get("window"), "rho": fv.get("rho"), "weight": fv.get("weight"),
            "saturation": sum(sat) / len(sat) if sat else None,
            "saturation_max": max(sat) if sat else None}

