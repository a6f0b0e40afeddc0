"""Charts of gradient flow through time (matplotlib, an optional extra).

Flow: recorded graph with ``grad_norm`` -> viz.diagnose (series) -> **viz.charts** -> PNG/SVG/PDF.

Three panels: ‖∂L/∂v(t)‖ against t on a log axis for each recurrent variable v; each step's
contribution ‖∇W(t)‖ to every shared parameter (the norm sent back along the parameter's edge
into step t; several reads within one step add their norms, an upper bound); and the per-step
gain ‖∂L/∂v(t)‖ / ‖∂L/∂v(t+1)‖ (below 1: the gradient shrinks as it goes back in time).
matplotlib is imported only when a chart is drawn: ``pip install matplotlib``.
"""
from __future__ import annotations

import os
from typing import Any

from .diagnose import recurrent_series
from .schema import is_finite, load


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
        A parameter name used in several scopes is keyed ``scope/name``.

    Examples
    --------
    >>> param_contributions(G)["W"][3]      # ‖∇W(3)‖, the book's W(t) copy at t = 3  # doctest: +SKIP
    0.0412
    """
    G = load(graph)
    names = [d["name"] for _, d in G.nodes(data=True) if d["kind"] == "param"]
    out: dict[str, dict[int, float]] = {}
    for p, d in sorted(G.nodes(data=True), key=lambda x: str(x[0])):
        if d["kind"] != "param":
            continue
        key = d["name"] if names.count(d["name"]) == 1 else f"{d['scope']}/{d['name']}"
        per: dict[int, float] = {}
        todo = [p]
        while todo:  # through step-free unary views (W.T made once): their edges carry ∇W(t)
            m = todo.pop()
            for _, c, e in G.out_edges(m, data=True):
                step, g = G.nodes[c]["step"], e.get("grad_norm")
                if step is None and G.in_degree(c) == 1:
                    todo.append(c)
                elif step is not None and g is not None:
                    per[step] = per.get(step, 0.0) + float(g)
        if per:
            out[key or f"param{p}"] = dict(sorted(per.items()))
    return out


def gradient_chart(graph: Any, path: str | os.PathLike, title: str | None = None) -> str:
    """Draw the three gradient-through-time panels to ``path`` (format from the suffix).

    Parameters
    ----------
    graph : networkx.DiGraph, object with ``to_networkx()``, or path
        Recorded after ``loss.backward(keep_grads=True)``.
    path : str or os.PathLike
        ``.png``, ``.svg`` or ``.pdf``.
    title : str, optional
        Figure title.

    Returns
    -------
    str
        The path written.

    Raises
    ------
    ImportError
        When matplotlib is not installed (it is an optional extra).
    ValueError
        When the graph carries no gradient norms.

    Examples
    --------
    >>> gradient_chart(G, "out/elman_grads.png")        # doctest: +SKIP
    'out/elman_grads.png'
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("viz.gradient_chart needs matplotlib, an optional extra: "
                          "`pip install matplotlib`") from exc
    G = load(graph)
    series = recurrent_series(G)
    contrib = param_contributions(G)
    if not series and not contrib:
        if all(d["grad_norm"] is None for _, d in G.nodes(data=True)):
            raise ValueError("gradient_chart: the graph has no gradient norms; run "
                             "loss.backward(keep_grads=True) before tg.trace(loss)")
        raise ValueError("gradient_chart: nothing flows through time here: no recurrent "
                         "variable and no parameter read inside a step; tag the loop's steps "
                         "with tg.step(t)")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
    ax = axes[0]
    for s in series:
        pts = [(t, g) for t, g in zip(s.steps, s.norms) if is_finite(g) and g > 0]
        if pts:
            ax.semilogy(*zip(*pts), marker="o", ms=3, label=f"{s.variable}")
        bad = [t for t, g in zip(s.steps, s.norms) if not is_finite(g)]
        if bad:
            ax.scatter(bad, [ax.get_ylim()[1]] * len(bad), color="red", marker="x",
                       label=f"{s.variable}: NaN/inf")
    ax.set(title="‖∂L/∂h(t)‖ per recurrent variable", xlabel="time step t",
           ylabel="gradient norm (log)")
    _legend(ax)
    ax = axes[1]
    for name, per in contrib.items():
        pts = [(t, g) for t, g in per.items() if is_finite(g) and g > 0]
        if pts:
            ax.semilogy(*zip(*pts), marker=".", ms=4, label=f"∇{name}(t)")
    ax.set(title="per-step contributions ‖∇W(t)‖ to shared parameters", xlabel="time step t",
           ylabel="norm (log)")
    _legend(ax)
    ax = axes[2]
    for s in series:
        gains = s.gains()
        steps = list(s.steps[:-1]) if s.direction > 0 else list(reversed(s.steps[1:]))
        pts = [(t, g) for t, g in zip(steps, gains) if is_finite(g) and g > 0]
        if pts:
            ax.semilogy(*zip(*pts), marker="o", ms=3, label=s.variable)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set(title="gain ‖∂L/∂h(t)‖ / ‖∂L/∂h(t+1)‖", xlabel="time step t", ylabel="gain (log)")
    _legend(ax)
    if title:
        fig.suptitle(title)
    path = os.fspath(path)
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _legend(ax: Any) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.25)
