"""Graphical-model view (Goodfellow et al. §10.2.3, figs. 10.7-10.8), derived from the record.

Flow: viz.schema -> viz.levels / viz.fold -> **viz.graphical_model** -> viz.render.

Left: the outputs y(1..τ) as a fully connected directed graphical model, an edge y(i) -> y(t)
wherever the recorded y(t) depends on step i, with the parameter count of a tabular
parametrisation, k^τ - 1 for k-valued outputs. Right: the same dependencies routed through the
recurrent states h(t), with the parameter count the recorded model actually has (shared over all
steps, so independent of τ).
"""
from __future__ import annotations

from typing import Any

import networkx as nx

from .fold import fold
from .levels import variable_level
from .figure import Figure, drawing
from .schema import load, sort_key
from .style import EDGE_ATTR, GRAPH_ATTR, NODE_ATTR, node_attrs, var_label

OUTPUT_NAMES = ("o", "yhat", "y")


@drawing("graphical")
def graphical_model(graph: Any, steps: int = 5) -> Figure:
    """Draw the outputs' dependency structure: fully connected, and through hidden states.

    Parameters
    ----------
    graph : networkx.DiGraph, object with ``to_networkx()``, or path
        A recorded graph with per-step outputs (named ``o``, ``yhat`` or ``y``).
    steps : int
        How many first steps to draw (the book draws 5).

    Returns
    -------
    viz.render.Figure

    Raises
    ------
    ValueError
        When the graph has no per-step output or no recurrent state.

    Examples
    --------
    >>> render(graphical_model(G), "out/graphical_model.svg")    # doctest: +SKIP
    """
    G = load(graph)
    V = variable_level(G)
    F = fold(V, level="variable")
    out_role, state_roles = _roles(F)
    shown_steps = sorted(F.nodes[out_role]["steps"])[:steps]
    outputs = {G.nodes[m]["step"]: m for m in F.nodes[out_role]["members"]
               if G.nodes[m]["step"] in shown_steps}
    tau = len(outputs)
    k = _values(G.nodes[outputs[shown_steps[0]]]["shape"])
    n_params = sum(_size(d["shape"]) for _, d in G.nodes(data=True) if d["kind"] == "param")
    fig = Figure(name="graphical_model", graph_attr=dict(GRAPH_ATTR, compound="true"),
                 node_attr=dict(NODE_ATTR), edge_attr=dict(EDGE_ATTR))
    ydata = {"kind": "op", "name": "y", "op": "leaf"}
    with fig.subgraph(name="cluster_full") as c:
        table = k ** tau - 1
        c.attr(label=f"<fully connected: every <B>y</B><SUP>(t)</SUP> reads all past outputs"
                     f"<BR/>tabular parameters k<SUP>τ</SUP> − 1 = {k}<SUP>{tau}</SUP> − 1 = "
                     f"{table:,}   (O(k<SUP>τ</SUP>))>", labelloc="b", color="#bbbbbb",
               style="rounded")
        with c.subgraph(name="full_row") as row:
            row.attr(rank="same")
            for t in shown_steps:
                row.node(f"f{t}", **node_attrs(ydata, var_label("y", t), "variable"))
        # an invisible spacer under the row keeps the arcs dot routes there inside the box
        c.node("fpad", label="", style="invis", width="0.1", height="0.4")
        c.edge("fpad", f"f{shown_steps[len(shown_steps) // 2]}", style="invis")
        for j, t in enumerate(shown_steps):
            for i in shown_steps[:j]:
                if _depends(G, outputs[t], i):
                    c.edge(f"f{i}", f"f{t}")
    with fig.subgraph(name="cluster_rnn") as c:
        c.attr(label=f"<through the hidden state: <B>h</B><SUP>(t)</SUP> = f(<B>h</B><SUP>(t−1)"
                     f"</SUP>, ...; θ)<BR/>recorded parameters: {n_params:,}, shared by every "
                     f"step (O(1) in τ)>", labelloc="b", color="#bbbbbb", style="rounded")
        keep = {out_role, *state_roles}
        nodes = [m for r in sorted(keep) for m in F.nodes[r]["members"]
                 if V.nodes[m]["step"] in shown_steps]
        rows: dict[int, list] = {}
        for r in sorted(keep):
            rows[r] = sorted((m for m in F.nodes[r]["members"] if V.nodes[m]["step"] in
                              shown_steps), key=lambda m: V.nodes[m]["step"])
        for r, members in rows.items():
            with c.subgraph(name=f"gm_row{r}") as row:
                row.attr(rank="same")
                for m in members:
                    d = V.nodes[m]
                    name = "y" if r == out_role else d["name"]
                    row.node(f"g{m}", **node_attrs(dict(d, name=name),
                                                     var_label(name, d["step"]), "variable"))
            for a, b in zip(members, members[1:]):
                if not (V.has_edge(a, b) or V.has_edge(b, a)):
                    c.edge(f"g{a}", f"g{b}", style="invis")
        chosen = set(nodes)
        for u, v in sorted(V.subgraph(nodes).edges, key=lambda e: (sort_key(e[1]), sort_key(e[0]))):
            if u in chosen and v in chosen:
                c.edge(f"g{u}", f"g{v}")
    return fig


def _roles(F: nx.DiGraph) -> tuple[int, list[int]]:
    """The per-step output role (o, else yhat, else y) and the recurrent state roles."""
    states = sorted({v for u, v, e in F.edges(data=True) if e["delay"]})
    outs = [r for r, d in F.nodes(data=True) if d["steps"] and d["name"] in OUTPUT_NAMES]
    if not outs:
        raise ValueError("graphical_model: no per-step output named o, yhat or y in the graph; "
                         "name the outputs (tensor.named('o')) inside tg.step(t)")
    out = min(outs, key=lambda r: (OUTPUT_NAMES.index(F.nodes[r]["name"]), r))
    states = [r for r in states if r != out]
    if not states:
        raise ValueError("graphical_model: the graph has no recurrent state (no edge between "
                         "time steps); is every step tagged with tg.step(t)?")
    return out, states


def _depends(G: nx.DiGraph, n: Any, step: int) -> bool:
    """Does node n depend on anything computed at ``step``? (iterative backward search)"""
    todo, seen = [n], {n}
    while todo:
        m = todo.pop()
        for p in G.predecessors(m):
            if p in seen:
                continue
            seen.add(p)
            if G.nodes[p]["step"] == step:
                return True
            todo.append(p)
    return False


def _values(shape: Any) -> int:
    """k, the number of values an output ranges over: its last dimension (at least 2)."""
    return max(2, int(shape[-1])) if shape else 2


def _size(shape: Any) -> int:
    n = 1
    for s in shape or ():
        n *= int(s)
    return n
