"""The folded view: recurrence drawn as one loop through the book's delay marker.

Flow: viz.schema -> viz.levels -> viz.fold (the quotient graph) -> **viz.folded** -> viz.render.

Each role of :func:`viz.fold.fold` is one node; each edge standing for unfolded edges inside a
step is a plain arrow; each edge standing for edges between steps goes through a small black
square (a delay of one step, Goodfellow et al. fig. 10.2) and is labelled with the parameter it
carries. A loop running backward in time (the g of a bidirectional net) says ``t+1`` beside its
square. Nothing here depends on the sequence length: the same model gives the same DOT for any T.
"""
from __future__ import annotations

from typing import Any

import networkx as nx

from .fold import fold
from .grads import Scale
from .header import edge_style, edge_tooltip, new_figure, node_label, node_tooltip, overlay
from .levels import choose_level
from .names import scope_titles
from .figure import Figure, drawing
from .style import DELAY_ATTRS, fmt, node_attrs


@drawing("folded")
def folded(graph: Any, level: str = "variable", grads: bool = False) -> Figure:
    """Draw the folded computational graph (one node per role, delay loops).

    Parameters
    ----------
    graph : networkx.DiGraph, object with ``to_networkx()``, or path
        A recorded (unfolded) graph in the tinygraph schema.
    level : {"variable", "op"}
        The textbook's named tensors, or every op.
    grads : bool
        Overlay the gradient norms: colour by the median over steps, the label gives
        min · median · max.

    Returns
    -------
    viz.render.Figure
        A ``graphviz.Digraph`` (``.source`` is the DOT text). As in the book, the initial state
        h(0) is not drawn (the loop says where h comes from) and the total loss is the same L
        as the per-step losses. Several time axes one after the other (an encoder, then its
        decoder) are drawn as labelled clusters.

    Examples
    --------
    >>> fig = folded(G)                               # doctest: +SKIP
    >>> "fillcolor=black" in fig.source               # the delay marker   # doctest: +SKIP
    True
    """
    G, level, note = choose_level(graph, level)
    F = fold(G, level=level)
    scale = None
    if grads:
        scale = Scale.of((x for _, d in F.nodes(data=True) if d["grad_stats"]
                          for x in d["grad_stats"]), graph=G)
    fig = new_figure("folded", note, scale, graph=G)
    shown = [r for r in sorted(F) if "initial" not in F.nodes[r]]
    clusters = _clusters(F, shown)
    for r in shown:
        d = F.nodes[r]
        attrs = node_attrs(d, node_label(d, level), level)
        attrs["tooltip"] = node_tooltip(d, extra=_steps_note(d, scale), role=True)
        if scale is not None:
            overlay(attrs, dict(d, grad_norm=_representative(d)), scale,
                    d["grad_stats"] if d["count"] > 1 else None, d["nonfinite"])
        target = clusters.get(d["timeline"], fig)
        target.node(f"r{r}", **attrs)
    for u, v, e in sorted(F.edges(data=True), key=lambda x: (x[1], x[0])):
        if u not in shown or v not in shown:
            continue  # the initial state's edge: the loop already carries the parameter
        norm = _representative_edge(e) if scale is not None else None
        label = e["label"] if level == "variable" else ""
        if e["same"]:
            attrs = edge_style(label, e["detached"], norm, scale, F.nodes[v])
            attrs["tooltip"] = edge_tooltip(F.nodes[u], F.nodes[v], e["label"], role=True)
            fig.edge(f"r{u}", f"r{v}", **attrs)
        if e["delay"]:
            _delay_edge(fig, clusters.get(F.nodes[v]["timeline"], fig), F, u, v, e, norm,
                        scale)
    for line, sub in sorted(clusters.items()):
        fig.subgraph(sub)
    return fig


def _clusters(F: nx.DiGraph, shown: list[int]) -> dict[int, Figure]:
    """One labelled cluster per time axis when there are several (encoder, decoder)."""
    lines: dict[int, list[str]] = {}
    for r in shown:
        d = F.nodes[r]
        if d["timeline"] is not None and F.has_edge(r, r):  # the recurrent states name it
            lines.setdefault(d["timeline"], []).append(d["scope"])
    if len(lines) < 2:
        return {}
    firsts = {line: scopes[0] for line, scopes in lines.items()}
    titles = scope_titles(list(firsts.values()))
    subs = {}
    for line, scope in firsts.items():
        sub = Figure(name=f"cluster_t{line}")
        sub.attr(label=titles[scope] or "top level", labeljust="l", style="rounded,dashed",
                 color="#999999", fontsize="12", fontcolor="#555555")
        subs[line] = sub
    return subs


def _delay_edge(fig: Figure, home: Figure, F: nx.DiGraph, u: int, v: int, e: dict, norm: Any,
                scale: Any) -> None:
    """u -> ■ -> v: the square (in ``home``, v's cluster) is ranked just below v; a self-loop
    leaves v sideways and comes back from below, as the book draws it."""
    sq = f"d{u}_{v}"
    square = dict(DELAY_ATTRS)
    back = bool(e["lags"]) and max(e["lags"]) < 0
    if back:
        square.update(xlabel="<<FONT POINT-SIZE=\"10\">t+1</FONT>>")
    what = "one step later" if not back else "one step earlier: the backward loop"
    square["tooltip"] = f"delay: {what}"
    home.node(sq, **square)
    attrs = edge_style("", e["detached"], norm, scale, F.nodes[v])
    tip = edge_tooltip(F.nodes[u], F.nodes[v], e["label"], what=what, role=True)
    fig.edge(sq, f"r{v}", tooltip=tip,
             **edge_style(e["label"], e["detached"], norm, scale, F.nodes[v]))
    if u == v:  # h -> ■ drawn as ■ -> h reversed, leaving h sideways: the square sits under
        # its own node and the two edges make a loop (a backward loop on the other side)
        fig.edge(sq, f"r{u}", dir="back", arrowsize="0.5", headport="w" if back else "e",
                 tooltip=tip, **attrs)
        return
    fig.edge(f"r{u}", sq, constraint="false", arrowsize="0.5", tooltip=tip, **attrs)


def _steps_note(d: dict, scale: Any) -> str:
    """What a folded node stands for; with the overlay, its gradient norms over the steps."""
    text = "one node per step" if d["steps"] else "outside the steps"
    if scale is not None and d["grad_stats"]:
        lo, mid, hi = d["grad_stats"]
        text += f"\n‖∂L/∂·‖ min {fmt(lo)} · median {fmt(mid)} · max {fmt(hi)}"
    return text


def _representative(d: dict) -> Any:
    """The norm a folded node is coloured by: the median over its steps."""
    if d["grad_stats"] is None:
        return float("nan") if d["nonfinite"] else None
    return d["grad_stats"][1]


def _representative_edge(e: dict) -> Any:
    if e["grad_stats"] is None:
        return float("nan") if e["nonfinite"] else None
    return e["grad_stats"][1]
