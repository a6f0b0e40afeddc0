"""What every figure shares: its header (attributes, note, legend), node labels, edge style, tooltips.

Flow: viz.style (looks) + viz.grads (overlay) -> **viz.header** -> viz.folded, viz.unfolded,
viz.tree, viz.graphical_model (one place for what used to be written once per view).

The header puts the gradient legend and the figure's note (e.g. "name your tensors") in one
graph label, so neither hides the other. Tooltips are what a reader hovering over an SVG node
or edge wants: the name as the figure writes it, the op, shape, dtype, scope, step, value and
gradient norms and the source line, instead of Graphviz's internal node id.
"""
from __future__ import annotations

from html import escape
from typing import Any

from .grads import Scale, edge_overlay, legend, node_overlay
from .figure import Figure
from .style import EDGE_ATTR, GRAPH_ATTR, NODE_ATTR, edge_label, fmt, op_label, var_label


CUT = "#cc0000"  # edges cut by detach: no gradient flows back along them


def new_figure(name: str, note: str = "", scale: Scale | None = None,
               graph: Any = None, **graph_attr: str) -> Figure:
    """A figure with the shared look; the legend (when ``scale``) on top, the notes under it.

    Parameters
    ----------
    name : str
        The DOT graph's name (``folded``, ``unfolded``, ...).
    note : str
        A line for the reader (why the op level was chosen, what to name), or "".
    scale : viz.grads.Scale or None
        The gradient overlay's scale; its legend heads the figure.
    graph : networkx.DiGraph, optional
        The loaded graph drawn: its ``inference_note`` (set by :func:`viz.infer.infer` when
        it guessed the names or could not tell the time steps apart) is printed as a line of
        the header, so a plain loop's figure says what was guessed and names the fix.
    **graph_attr
        Graph attributes overriding :data:`viz.style.GRAPH_ATTR`.

    Returns
    -------
    viz.render.Figure

    Examples
    --------
    >>> fig = new_figure("folded", graph=G)       # doctest: +SKIP
    >>> G.graph["inference_note"] in fig.source   # doctest: +SKIP
    True
    """
    fig = Figure(name=name, graph_attr=dict(GRAPH_ATTR, **graph_attr),
                 node_attr=dict(NODE_ATTR), edge_attr=dict(EDGE_ATTR))
    rows = []  # a label is one text or one table: the legend (a table) and the note are rows
    if scale is not None:
        rows.append(legend(scale)[1:-1])
    notes = [note, (graph.graph.get("inference_note") if graph is not None else None) or ""]
    rows += [escape(n) for n in dict.fromkeys(notes) if n]
    if len(rows) == 1:
        fig.attr(label=f"<{rows[0]}>", labelloc="t" if scale else "b",
                 fontsize="12" if scale else "11")
    elif rows:
        cells = "".join(f"<TR><TD>{r}</TD></TR>" for r in rows)
        fig.attr(label=f'<<TABLE BORDER="0" CELLBORDER="0">{cells}</TABLE>>', labelloc="t",
                 fontsize="12")
    return fig


def node_label(d: dict, level: str, step: Any = None) -> str:
    """The label rule: a named tensor as the book writes it at the variable level, else the op."""
    if level == "variable" and d["kind"] != "param":
        return var_label(d["name"], step)
    return op_label(d, step, show_step=True)


def edge_style(label: str, detached: bool, norm: Any = None, scale: Scale | None = None,
               target: dict | None = None) -> dict[str, str]:
    """DOT attributes of an edge: parameter label, dashed when cut by detach, gradient overlay
    (coloured within the ``target`` variable's row, as its node is)."""
    attrs: dict[str, str] = {}
    if label:
        attrs["label"] = edge_label(label)
    if scale is not None:
        attrs.update(edge_overlay(norm, scale, target))
    if detached:  # truncated BPTT: the cut must stand out, with or without the overlay
        attrs.update(style="dashed", color=CUT, penwidth="1.6")
        attrs["label"] = (attrs.get("label", "<>")[:-1] +
                          f' <FONT COLOR="{CUT}" POINT-SIZE="10">cut</FONT>>')
    return attrs


def written(name: str | None, step: Any = None) -> str:
    """Plain text of a label: ``h_enc`` at step 3 -> ``h_enc(3)``."""
    if not name:
        return ""
    return f"{name}({step})" if step is not None else name


def _tip(text: str) -> str:
    """A tooltip as DOT reads it: a backslash is an escape there, so it is doubled."""
    return text.replace("\\", "\\\\")


def node_tooltip(d: dict, shown_step: Any = None, extra: str = "", role: bool = False) -> str:
    """Hover text of a node: what it is, where it was made, its norms (one fact per line).

    A folded ``role`` stands for every step: it gives no step and no single step's norms, so
    the folded figure stays the same whatever the sequence length.
    """
    head = written(d.get("name"), shown_step) or d["op"]
    lines = [f"{head}  [{d['kind']}{', ' + d['op'] if d['op'] != 'leaf' else ''}]"]
    # a folded role gives no shape: one outside the steps may gather all of them (a stack
    # over time), and a tree's leaves are one per node or batched; the figure must not care
    if d.get("shape") is not None and not role:
        lines.append(f"shape {tuple(d['shape'])} {d.get('dtype') or ''}".rstrip())
    elif d.get("dtype"):
        lines.append(f"dtype {d['dtype']}")
    if d.get("scope"):
        lines.append(f"scope {d['scope']}")
    if d.get("step") is not None and not role:
        lines.append(f"step {d['step']}")
    if d.get("param"):
        lines.append(f"reads {d['param']}")
    if d.get("value_norm") is not None and not role:
        lines.append(f"‖value‖ {fmt(d['value_norm'])}")
    if d.get("grad_norm") is not None and not role:
        lines.append(f"‖∂L/∂·‖ {fmt(d['grad_norm'])}")
    if d.get("src"):
        lines.append(f"source {d['src']}")
    if extra:
        lines.append(extra)
    return _tip("\n".join(lines))


def edge_tooltip(du: dict, dv: dict, label: str = "", norm: Any = None, what: str = "",
                 role: bool = False) -> str:
    """Hover text of an edge: source -> target, the parameters it carries, its gradient norm
    (between folded ``role`` nodes: no step)."""
    a = written(du.get("name"), None if role else du.get("step")) or du["op"]
    b = written(dv.get("name"), None if role else dv.get("step")) or dv["op"]
    text = f"{a} → {b}"
    if label:
        text += f" through {label.replace(',', ', ')}"
    if what:
        text += f" ({what})"
    if norm is not None:
        text += f"\n‖∂L/∂·‖ sent back {fmt(norm)}"
    return _tip(text)


__all__ = ["edge_style", "edge_tooltip", "new_figure", "node_label", "overlay",
           "node_tooltip", "written"]


def overlay(attrs: dict, norm: Any, scale: Scale, stats: tuple | None = None,
            nonfinite: int = 0) -> dict:
    """``attrs`` with the gradient overlay: colours, and the norm small under the label.

    ``norm`` is a number or the node's attribute dict (its row's colour range and the
    report's mark apply, see :func:`viz.grads.node_overlay`). A folded node gives its ``stats`` (min, median, max over its steps) and how many steps
    were ``nonfinite``. A circle round a two-line label balloons: it becomes an ellipse.
    """
    over, note = node_overlay(norm, scale, stats)
    if nonfinite and stats:
        over, _ = node_overlay(float("nan"), scale)
        note += f" ({nonfinite} NaN/inf)"
    attrs.update(over)
    if note:
        attrs["label"] = attrs["label"][:-1] + \
            f'<BR/><FONT POINT-SIZE="9">{escape(note)}</FONT>>'
        if attrs.get("shape") == "circle":
            attrs.update(shape="ellipse", margin="0.04,0.02")
    return attrs
