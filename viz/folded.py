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

from .fold import fold
from .levels import choose_level
from .grads import Scale, edge_overlay, legend, node_overlay
from .figure import Figure, drawing
from .style import (DELAY_ATTRS, EDGE_ATTR, GRAPH_ATTR, NODE_ATTR, edge_label, node_attrs,
                    op_label, var_label)


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
        A ``graphviz.Digraph`` (``.source`` is the DOT text).

    Examples
    --------
    >>> fig = folded(G)                               # doctest: +SKIP
    >>> "fillcolor=black" in fig.source               # the delay marker   # doctest: +SKIP
    True
    """
    G, level, note = choose_level(graph, level)
    F = fold(G, level=level)
    fig = Figure(name="folded", graph_attr=dict(GRAPH_ATTR), node_attr=dict(NODE_ATTR),
                 edge_attr=dict(EDGE_ATTR))
    if note:
        fig.attr(label=note, labelloc="b", fontsize="11")
    scale = None
    if grads:
        scale = Scale.of((x for _, d in F.nodes(data=True) if d["grad_stats"]
                          for x in d["grad_stats"]), graph=G)
        fig.attr(label=legend(scale), labelloc="t", fontsize="12")
    for r in sorted(F):
        d = F.nodes[r]
        if level == "variable" and d["kind"] != "param":
            label = var_label(d["name"], _initial(d))
        else:
            label = op_label(d, _initial(d), show_step=True)
        attrs = node_attrs(d, label, level)
        if scale is not None:
            norm = _representative(d)
            over, note = node_overlay(dict(d, grad_norm=norm), scale,
                                      d["grad_stats"] if d["count"] > 1 else None)
            if d["nonfinite"] and d["grad_stats"]:
                over, _ = node_overlay(float("nan"), scale)
                note += f" ({d['nonfinite']} NaN/inf)"
            attrs.update(over)
            if note:
                from html import escape
                attrs["label"] = attrs["label"][:-1] + \
                    f'<BR/><FONT POINT-SIZE="9">{escape(note)}</FONT>>'
                if attrs.get("shape") == "circle":
                    attrs.update(shape="ellipse", margin="0.04,0.02")
        fig.node(f"r{r}", **attrs)
    for u, v, e in sorted(F.edges(data=True), key=lambda x: (x[1], x[0])):
        attrs: dict[str, str] = {}
        if e["detached"]:
            attrs["style"] = "dashed"
        if scale is not None:
            attrs.update(edge_overlay(_representative_edge(e), scale))
        text = edge_label(e["label"])
        if e["same"]:
            plain = dict(attrs, label=text) if text and level == "variable" else dict(attrs)
            fig.edge(f"r{u}", f"r{v}", **plain)
        if e["delay"]:
            _delay_edge(fig, u, v, e, text, attrs)
    return fig


def _delay_edge(fig: Figure, u: int, v: int, e: dict, text: str, attrs: dict) -> None:
    """u -> ■ -> v: the square is ranked just below v, so a self-loop bends out and back."""
    sq = f"d{u}_{v}"
    square = dict(DELAY_ATTRS)
    if e["lags"] and max(e["lags"]) < 0:
        square.update(xlabel="<<FONT POINT-SIZE=\"10\">t+1</FONT>>")
    fig.node(sq, **square)
    fig.edge(f"r{u}", sq, constraint="false", **dict(attrs, arrowhead="none"))
    fig.edge(sq, f"r{v}", **(dict(attrs, label=text) if text else dict(attrs)))


def _initial(d: dict) -> str | None:
    """h(0) for the initial state of a forward loop, g(τ+1) for a backward one."""
    if "initial" not in d:
        return None
    return "0" if d["initial"] > 0 else "τ+1"


def _representative(d: dict) -> Any:
    """The norm a folded node is coloured by: the median over its steps."""
    if d["grad_stats"] is None:
        return float("nan") if d["nonfinite"] else None
    return d["grad_stats"][1]


def _representative_edge(e: dict) -> Any:
    if e["grad_stats"] is None:
        return float("nan") if e["nonfinite"] else None
    return e["grad_stats"][1]
