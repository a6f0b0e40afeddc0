"""The flow heat map: ‖∂L(τ′)/∂h(t)‖ for every loss term τ′ and every step t (matplotlib).

Flow: ``tg.trace(loss, flow=tg.flow(...))`` (the ``flow`` graph attribute, also in saved JSON)
-> viz.diagnose (the table per variable, the verdict) -> **viz.flowmap** -> a Figure.

One panel per recurrent variable (an encoder's h and its decoder's h are two panels; a tree's
states are columns by height): rows are the loss terms L(τ′), columns the states h(t), the
colour is log10 of the norm with a colour bar. Where a row's flow falls below
``VANISH_RATIO`` of its local value (the horizon of :func:`viz.diagnose.diagnose`) a white
tick is drawn: long-range gradient is dead to the far side of the ticks.
"""
from __future__ import annotations

import os
from typing import Any

from .charts import new_figure, save_figure
from .diagnose import diagnose
from .horizon import VANISH_RATIO, flow_table
from .schema import is_finite, load


def flow_map(graph: Any, path: str | os.PathLike | None = None,
             title: str | None = None) -> Any:
    """Heat maps of the per-loss-term gradient flow of each recurrent variable.

    Parameters
    ----------
    graph : networkx.DiGraph, object with ``to_networkx()``, or path
        Traced with ``tg.trace(loss, flow=tg.flow(terms, states))``.
    path : str or os.PathLike, optional
        Also save the figure there (``.png``, ``.svg``, ``.pdf``).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Made without pyplot (the backend is left alone).

    Raises
    ------
    ImportError
        Without matplotlib.
    ValueError
        When the graph carries no ``flow`` attribute (the message says how to export it).

    Examples
    --------
    >>> fig = flow_map(tg.trace(loss, flow=tg.flow(terms, out.h)), "out/flow.png")  # doctest: +SKIP
    """
    try:
        import numpy as np
        from matplotlib.colors import LogNorm
        from matplotlib.ticker import MaxNLocator
    except ImportError as exc:
        raise ImportError("viz.flow_map needs matplotlib and numpy: `pip install matplotlib`"
                          ) from exc
    G = load(graph)
    f = G.graph.get("flow")
    variables = f.get("variables", []) if isinstance(f, dict) else []
    if not variables:
        raise ValueError("flow_map: the graph carries no per-loss-term flow; trace it with "
                         "tg.trace(loss, flow=tg.flow(terms, states)) (terms: the loss terms "
                         "L(t); states: h(1..τ))")
    report = diagnose(G)
    n = len(variables)
    ncols = min(2, n)
    nrows = -(-n // ncols)
    one_term = all(len(v.get("loss_steps") or []) <= 1 for v in variables)  # one row: a strip
    fig = new_figure(figsize=(6.2 * ncols, (2.6 if one_term else 5.0) * nrows),
                     layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, v in zip(axes, variables):
        steps, loss_steps, M = flow_table(v)
        A = np.array(M, dtype=float)
        positive = A[np.isfinite(A) & (A > 0)]
        masked = np.ma.masked_where(~np.isfinite(A) | (A <= 0), A)
        hi = float(positive.max()) if positive.size else 1.0
        lo = max(float(positive.min()) if positive.size else hi * 1e-3, hi * 1e-16)
        x0, x1 = steps[0] - 0.5, steps[-1] + 0.5
        ys = [y if y is not None else k + 1 for k, y in enumerate(loss_steps)]
        y0, y1 = min(ys) - 0.5, max(ys) + 0.5
        cmap = _cmap()
        im = ax.imshow(masked, origin="lower", aspect="auto", interpolation="nearest",
                       cmap=cmap, norm=LogNorm(vmin=lo, vmax=hi if hi > lo else lo * 10),
                       extent=(x0, x1, y0, y1))
        name = v.get("name") or "h"
        finding = next((f for f in report.findings if f.scope == v.get("scope")
                        and f.name == name), None)
        _horizon_ticks(ax, steps, ys, M, finding.direction if finding is not None else 1)
        bar = fig.colorbar(im, ax=ax, shrink=0.9)
        bar.set_label("‖∂L(τ′)/∂" + (v.get("name") or "h") + "(t)‖ (log)")
        unit = "height" if len(set(v["steps"])) < len(v["steps"]) else "step"
        var = "t" if unit == "step" else "k"
        verdict = f" — {finding.verdict}" if finding is not None else ""
        horizon = ""
        if finding is not None and finding.horizon is not None:
            horizon = (f", horizon {finding.horizon} {unit}s" if finding.horizon < finding.span
                       else f", horizon ≥ {finding.span} {unit}s")
        where = f" [{v.get('scope')}]" if v.get("scope") else ""
        ax.set(title=f"flow to {name}({var}){where}{verdict}{horizon}",
               xlabel="tree height k" if unit == "height" else "state step t",
               ylabel="loss term τ′")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # τ′ even alone
    for ax in axes[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def _cmap() -> Any:
    from matplotlib import colormaps
    # no dependence (L(τ′) does not read h(t)): light grey
    return colormaps["viridis"].with_extremes(bad="#eeeeee")


def _horizon_ticks(ax: Any, steps: list, ys: list, M: list, direction: int) -> None:
    """A white tick on each row where its flow first falls below VANISH_RATIO of the local
    value (the state the term reads first: the last one for a forward chain), as diagnose
    measures the horizon."""
    xs, yy = [], []
    forward = direction > 0
    for y, row in zip(ys, M):
        nz = [(st, x) for st, x in zip(steps, row) if is_finite(x) and x > 0]
        if not nz:
            continue
        ordered = sorted(nz, key=lambda p: -p[0]) if forward else sorted(nz)
        local = ordered[0][1]
        for st, x in ordered:
            if x < VANISH_RATIO * local:
                xs.append(st + (0.5 if forward else -0.5))
                yy.append(y)
                break
    if xs:
        ax.scatter(xs, yy, marker="|", s=60, color="white", linewidths=1.5,
                   label=f"below {VANISH_RATIO:g} of local")
        ax.legend(loc="upper left", fontsize=8, frameon=True, framealpha=0.6)
