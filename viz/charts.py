"""Charts of gradient flow through time (matplotlib, an optional extra).

Flow: recorded graph with ``grad_norm`` (and the ``flow`` attribute) -> viz.diagnose (series,
findings) -> **viz.charts** -> a ``matplotlib.figure.Figure`` (saved as PNG/SVG/PDF on request).

Panels, one time axis each (an encoder and its decoder get separate panels; the forward and
backward chains of a bidirectional net share one): ‖∂L/∂v(t)‖ on a log axis for the recurrent
variables of the axis; each step's contribution ‖∇W(t)‖ to the shared parameters read on it
(the norm sent back along the parameter's edge into the step; several reads within one step add
their norms, an upper bound); for each variable :func:`viz.diagnose.diagnose` judged, the flow
from one loss term relative to its local value, with the horizon threshold (the same numbers
as the verdict); and, when ``tg.flow`` was exported, σ_max(∂h(t)/∂h(t−1)) with ρ(W).

The figure is made without pyplot: no backend is chosen or changed, so ``plt.show()`` and a
notebook's inline display keep working. matplotlib is imported only when a chart is drawn.
"""
from __future__ import annotations

import os
import textwrap
from typing import Any

from .diagnose import diagnose
from .horizon import VANISH_RATIO, Finding, Series
from .names import prepare
from .schema import is_finite
from .timeline import timelines

STYLES = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ("-", "v"), ("--", "x"),
          (":", "P"), ("-.", "*")]


def new_figure(**kwargs: Any) -> Any:
    """A matplotlib Figure made without pyplot (no backend chosen or changed) that a notebook
    shows inline as PNG when it is a cell's value, whatever the backend."""
    import io

    from matplotlib.figure import Figure

    class InlineFigure(Figure):
        def _repr_png_(self) -> bytes:
            buf = io.BytesIO()
            self.savefig(buf, format="png", dpi=90)
            return buf.getvalue()

    return InlineFigure(**kwargs)


def param_contributions(graph: Any) -> dict[str, dict[int, float]]:
    """Per shared parameter, per step: the gradient norm sent back along its edges into the step.

    Parameters
    ----------
    graph : networkx.DiGraph, object with ``to_networkx()``, or path
        Recorded after ``backward(keep_grads=True)`` (edges carry ``grad_norm``).

    Returns
    -------
    dict
        ``{"W": {1: 0.03, 2: 0.05, ...}, ...}``; parameters read outside steps are left out.
        Keys are the names the figures draw (viz.names' label rule): two layers' W are
        ``W_1`` and ``W_2``, the encoder's and decoder's ``W_enc`` and ``W_dec``.

    Examples
    --------
    >>> param_contributions(G)["W"][3]      # ‖∇W(3)‖, the book's W(t) copy at t = 3  # doctest: +SKIP
    0.0412
    """
    return {k: per for k, (per, _) in _contributions(prepare(graph)).items()}


def _contributions(G: Any) -> dict[str, tuple[dict[int, float], set]]:
    """``{key: ({step: norm}, {scopes of the reading ops})}`` of a graph from
    :func:`viz.names.prepare` (its parameter names are already distinct: the key is the name)."""
    names = [d["name"] for _, d in G.nodes(data=True) if d["kind"] == "param"]
    out: dict[str, tuple[dict[int, float], set]] = {}
    for p, d in sorted(G.nodes(data=True), key=lambda x: str(x[0])):
        if d["kind"] != "param":
            continue
        key = d["name"] if names.count(d["name"]) == 1 else f"{d['scope']}/{d['name']}"
        per: dict[int, float] = {}
        scopes: set = set()
        todo = [p]
        while todo:  # through step-free unary views (W.T made once): their edges carry ∇W(t)
            m = todo.pop()
            for _, c, e in G.out_edges(m, data=True):
                step, g = G.nodes[c]["step"], e.get("grad_norm")
                if step is None and G.in_degree(c) == 1:
                    todo.append(c)
                elif step is not None and g is not None:
                    per[step] = per.get(step, 0.0) + float(g)
                    scopes.add(G.nodes[c]["scope"])
        if per:
            out[key or f"param{p}"] = (dict(sorted(per.items())), scopes)
    return out


def gradient_chart(graph: Any, path: str | os.PathLike | None = None,
                   title: str | None = None) -> Any:
    """The gradient-through-time panels of a recorded graph, as a matplotlib Figure.

    Parameters
    ----------
    graph : networkx.DiGraph, object with ``to_networkx()``, or path
        Recorded after ``loss.backward(keep_grads=True)`` (traced with ``flow=tg.flow(...)``
        for the flow and spectra panels of a graph with a loss at every step).
    path : str or os.PathLike, optional
        Also save it there (``.png``, ``.svg`` or ``.pdf``; folders are made).
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Shown inline when it is the last expression of a notebook cell. Made without pyplot,
        so the backend and ``plt.show()`` are left as they were.

    Raises
    ------
    ImportError
        When matplotlib is not installed (it is an optional extra).
    ValueError
        When the graph carries no gradient norms, or nothing in it flows through time.

    Examples
    --------
    >>> fig = gradient_chart(G, "out/elman_grads.png")        # doctest: +SKIP
    >>> fig.axes[0].get_title()                               # doctest: +SKIP
    '‖∂L/∂h(t)‖'
    """
    try:
        from matplotlib.ticker import MaxNLocator
    except ImportError as exc:
        raise ImportError("viz.gradient_chart needs matplotlib, an optional extra: "
                          "`pip install matplotlib`") from exc
    G = prepare(graph)  # the label rule's names, as in the figures: W_1, not layer1/W
    report = diagnose(G)
    series = list(report.series)
    contrib = _contributions(G)
    if not series and not contrib:
        if all(d["grad_norm"] is None for _, d in G.nodes(data=True)):
            raise ValueError("gradient_chart: the graph has no gradient norms; run "
                             "loss.backward(keep_grads=True) before tg.trace(loss)")
        raise ValueError("gradient_chart: nothing flows through time here: no recurrent "
                         "variable and no parameter read inside a step; tag the loop's steps "
                         "with tg.step(t)")
    tl = timelines(G)
    axes_of: dict[int, list[Series]] = {}
    for s in series:
        axes_of.setdefault(s.timeline, []).append(s)
    params_of: dict[int, dict] = {}
    for key, (per, scopes) in contrib.items():
        line = min((tl.get(sc, 0) for sc in scopes), default=0)
        params_of.setdefault(line, {})[key] = per
    judged = [f for f in report.findings if f.profile]
    spectra = _spectra_series(G)
    panels = ([("norms", k) for k in sorted(axes_of)] + [("params", k) for k in sorted(params_of)]
              + [("flow", f) for f in judged] + [("sigma", v) for v in spectra])
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig = new_figure(figsize=(5.6 * ncols, 3.9 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (kind, what) in zip(axes, panels):
        if kind == "norms":
            _norms_panel(ax, axes_of[what])
        elif kind == "params":
            _params_panel(ax, params_of[what], _unit(axes_of.get(what, [])))
        elif kind == "flow":
            _flow_panel(ax, what)
        else:
            _sigma_panel(ax, what)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.title.set_fontsize(10)
        ax.grid(True, which="both", alpha=0.25)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                      borderaxespad=0.0, frameon=False)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    # wrapped to the figure's width: a one-panel chart is narrower than a long exhibit title
    heading = f"{title + ' — ' if title else ''}gradient flow: {report.verdict.upper()}"
    fig.suptitle(textwrap.fill(heading, width=max(40, int(fig.get_figwidth() * 9))))
    return save_figure(fig, path)


def save_figure(fig: Any, path: str | os.PathLike | None) -> Any:
    """Save `fig` at `path` (folders made; format from the suffix) when a path is given."""
    if path is not None:
        path = os.fspath(path)
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        fig.savefig(path, dpi=110)
    return fig


def _unit(series: list[Series]) -> str:
    return "height" if any(s.unit == "height" for s in series) else "step"


def _xlabel(unit: str) -> str:
    return "tree height" if unit == "height" else "time step t"


def _norms_panel(ax: Any, series: list[Series]) -> None:
    short = _short([s.variable for s in series])
    for k, s in enumerate(series):
        ls, mk = STYLES[k % len(STYLES)]
        pts = [(t, g) for t, g in zip(s.steps, s.norms) if is_finite(g) and g > 0]
        if pts:
            ax.semilogy(*zip(*pts), ls=ls, marker=mk, ms=max(3.0, 6.0 - 1.5 * k),
                        label=short[s.variable])
        bad = [t for t, g in zip(s.steps, s.norms) if not is_finite(g)]
        if bad:
            ax.scatter(bad, [max((g for _, g in pts), default=1.0)] * len(bad), color="red",
                       marker="x", zorder=5, label=f"{s.variable}: NaN/inf")
    unit = _unit(series)
    var = "t" if unit == "step" else "k"
    names = dict.fromkeys(s.variable.split("/")[-1] for s in series)
    ax.set(title=", ".join(f"‖∂L/∂{n}({var})‖" for n in names) + _scope_note(series),
           xlabel=_xlabel(unit), ylabel="gradient norm (log)")


def _short(keys: list[str]) -> dict[str, str]:
    """``scope/name`` -> ``name`` where the name alone is unambiguous in one panel (its title
    says the scope)."""
    names = [k.split("/")[-1] for k in keys]
    return {k: n if names.count(n) == 1 else k for k, n in zip(keys, names)}


def _scope_note(series: list[Series]) -> str:
    scopes = sorted({s.scope for s in series if s.scope})
    return f"  [{', '.join(scopes)}]" if scopes else ""


def _params_panel(ax: Any, contrib: dict, unit: str) -> None:
    var = "t" if unit == "step" else "k"
    merged: list[tuple[list[str], dict]] = []
    short = _short(list(contrib))
    for name, per in contrib.items():   # identical series are drawn once, with both names
        name = short[name]
        for names, other in merged:
            if other.keys() == per.keys() and all(
                    abs(other[t] - per[t]) <= 1e-12 * max(abs(other[t]), 1e-300) for t in per):
                names.append(name)
                break
        else:
            merged.append(([name], per))
    for k, (names, per) in enumerate(merged):
        ls, mk = STYLES[k % len(STYLES)]
        pts = [(t, g) for t, g in per.items() if is_finite(g) and g > 0]
        if pts:
            label = " = ".join(f"∇{n}({var})" for n in names)
            # later series draw smaller markers on top, so a coinciding point stays visible
            ax.semilogy(*zip(*pts), ls=ls, marker=mk, ms=max(3.0, 7.0 - 1.5 * k),
                        label=label + (" (identical)" if len(names) > 1 else ""))
    scopes = sorted({k.rsplit("/", 1)[0] for k in contrib if "/" in k})
    where = f"  [{', '.join(scopes)}]" if scopes else ""
    ax.set(title=f"per-{unit} contributions ‖∇W({var})‖ to shared parameters" + where,
           xlabel=_xlabel(unit), ylabel="norm (log)")


def _flow_panel(ax: Any, f: Finding) -> None:
    steps = [st for st, r in f.profile if is_finite(r) and r > 0]
    ratios = [r for st, r in f.profile if is_finite(r) and r > 0]
    ax.semilogy(steps, ratios, ls="-", marker="o", ms=3, label=f"{f.name}, from {f.loss}")
    ax.axhline(VANISH_RATIO, color="#999999", ls="--", lw=1,
               label=f"horizon threshold {VANISH_RATIO:g}")
    if max(ratios, default=0.0) > 1.0:   # growing back through time: the exploding line too
        ax.axhline(1 / VANISH_RATIO, color="#e69138", ls="--", lw=1,
                   label=f"exploding above {1 / VANISH_RATIO:g}")
    if f.horizon is not None and f.horizon < f.span and f.profile:
        edge = f.profile[f.horizon][0]
        ax.axvline(edge, color="#2171b5", ls=":", lw=1, label=f"horizon: {f.horizon} {f.unit}s")
    n = f.name
    var = "t" if f.unit == "step" else "k"
    ax.set(title=f"‖∂{f.loss}/∂{n}({var})‖ relative to its local value  [{f.verdict}]",
           xlabel=_xlabel(f.unit), ylabel="ratio (log)")


def _spectra_series(G: Any) -> list[dict]:
    """The exported flow variables with spectra, their names as the figures draw them."""
    f = G.graph.get("flow")
    out = []
    for v in (f.get("variables", []) if isinstance(f, dict) else []):
        if any(x is not None and is_finite(x) for x in v.get("sigma") or []):
            out.append(dict(v, **_drawn_names(G, v)))
    return out


def _drawn_names(G: Any, v: dict) -> dict:
    """The label rule's names of an exported flow variable and of its weight (``h_1``,
    ``W_1`` for the first of two stacked layers): the export keeps the recorded ``h``, ``W``."""
    names = {}
    node = next((n for n in v.get("nodes") or [] if n in G), None)
    if node is not None and G.nodes[node]["name"]:
        names["name"] = names["label"] = G.nodes[node]["name"]
    w = v.get("weight")
    if w:
        same = [d["name"] for _, d in G.nodes(data=True) if d["kind"] == "param" and d["name"]
                and d["scope"] == v.get("scope") and d["name"].split("_")[0] == w]
        if len(same) == 1:
            names["weight"] = same[0]
    return names


def _sigma_panel(ax: Any, v: dict) -> None:
    n = v.get("name") or "h"
    steps = v["steps"]
    for (key, label), (ls, mk) in zip(
            (("sigma", f"σ_max(∂{n}(t)/∂{n}(t−1))"),
             ("sigma_window", f"σ_max over {v.get('window')} steps")), STYLES):
        pts = [(t, x) for t, x in zip(steps, v.get(key) or []) if x is not None and is_finite(x)
               and x > 0]
        if pts:
            ax.semilogy(*zip(*pts), ls=ls, marker=mk, ms=3, label=label)
    if v.get("rho") is not None:
        ax.axhline(v["rho"], color="#e69138", ls="--", lw=1,
                   label=f"ρ({v.get('weight') or 'W'}) = {v['rho']:.3g}")
    ax.axhline(1.0, color="#999999", lw=0.8)
    sat = [x for x in v.get("saturation") or [] if x is not None and is_finite(x)]
    if sat:
        ax.plot([], [], " ", label=f"saturated units: mean {sum(sat) / len(sat):.0%}")
    label = v.get("label") or n
    ax.set(title=f"Jacobian spectra of {label}", xlabel="time step t",
           ylabel="singular value (log)")
