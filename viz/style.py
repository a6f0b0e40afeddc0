"""Look of the figures: the book's notation, node shapes and colours by role, DOT attributes.

Flow: viz.unfolded / viz.folded / viz.graphical_model -> **viz.style** (pure functions, no graph
work). Labels are Graphviz HTML-like labels: bold vectors with the time step as a superscript,
``h`` at step 3 reads **h**⁽³⁾ as in Goodfellow et al., ch. 10.
"""
from __future__ import annotations

from html import escape
from typing import Any

FONT = "Helvetica"

#: the textbook's reading of the names tinygraph.nn uses
CATEGORY_OF_NAME = {
    "x": "input", "h": "state", "g": "state", "s": "state", "C": "state", "a": "state",
    "o": "output", "yhat": "output", "L": "loss", "y": "target",
}
DISPLAY = {"yhat": "ŷ"}
ITALIC = {"L"}  # scalars: italic, not bold
#: names the book never indexes by time: the context C summarises the whole input
UNTIMED = {"C"}

FILL = {
    "input": "#d9ead3", "state": "#cfe2f3", "output": "#fff2cc", "loss": "#f4cccc",
    "target": "#eeeeee", "param": "#e4dcf2", "op": "#ffffff", "const": "#f3f3f3",
}
BORDER = {
    "input": "#6aa84f", "state": "#3d85c6", "output": "#bf9000", "loss": "#cc0000",
    "target": "#666666", "param": "#674ea7", "op": "#666666", "const": "#999999",
}

GRAPH_ATTR = {
    "rankdir": "BT", "fontname": FONT, "nodesep": "0.30", "ranksep": "0.45",
    "newrank": "true", "bgcolor": "white", "pad": "0.25",
}
NODE_ATTR = {"fontname": FONT, "fontsize": "14", "penwidth": "1.2"}
EDGE_ATTR = {"fontname": FONT, "fontsize": "12", "arrowsize": "0.7", "color": "#444444"}


def category(d: dict) -> str:
    """Which kind of box a node gets: input, state, output, loss, target, param, op, const."""
    if d["kind"] == "param":
        return "param"
    name = base_name(d.get("name"))
    if name:
        if name in CATEGORY_OF_NAME:
            return CATEGORY_OF_NAME[name]
        return "input" if d["kind"] == "input" else "state"
    return "op" if d["kind"] == "op" else "const"


def base_name(name: str | None) -> str | None:
    """``h_enc`` -> ``h``: the name without the subscript viz.names added."""
    return name.split("_", 1)[0] if name and "_" in name[1:] else name


def symbol(name: str) -> str:
    """HTML for a variable's symbol: bold vector, italic scalar loss; ``h_enc`` -> h subscript enc."""
    base, sub = name, ""
    if "_" in name[1:]:
        base, sub = name.split("_", 1)
    text = escape(DISPLAY.get(base, base))
    body = f"<I>{text}</I>" if base in ITALIC else f"<B>{text}</B>"
    if sub:
        body += f'<SUB><FONT POINT-SIZE="10">{escape(sub)}</FONT></SUB>'
    return body


def var_label(name: str, step: Any = None, note: str | None = None) -> str:
    """``<<B>h</B><SUP>(3)</SUP>>``: the book's h^(t); ``note`` goes small on a second line."""
    body = symbol(name)
    if step is not None and base_name(name) not in UNTIMED:
        body += f"<SUP>({escape(str(step))})</SUP>"
    if note:
        body += f'<BR/><FONT POINT-SIZE="9">{escape(note)}</FONT>'
    return f"<{body}>"


def op_label(d: dict, step: Any = None, show_step: bool = False) -> str:
    """Label of an op-level node: the op, with the tensor's name when it has one."""
    if d.get("name") and d["kind"] != "param":
        note = d["op"] if d["op"] != "leaf" else None
        return var_label(d["name"], step if show_step else None, note)
    if d["kind"] == "param":
        return var_label(d.get("name") or "θ")
    text = escape(d["op"] if d["op"] != "leaf" else (d["kind"]))
    return f"<{text}>"


def node_attrs(d: dict, label: str, level: str) -> dict[str, str]:
    """DOT attributes of a node by its category (circles for variables, boxes for ops/params)."""
    cat = category(d)
    attrs = {"label": label, "style": "filled", "fillcolor": FILL[cat], "color": BORDER[cat]}
    if cat == "param":
        attrs.update(shape="box", style="filled,rounded", margin="0.08,0.04")
    elif cat in ("op", "const"):
        attrs.update(shape="box", style="filled,rounded", fontsize="11", height="0.3",
                     margin="0.06,0.02")
    elif level == "op":
        attrs.update(shape="ellipse", margin="0.04,0.02")
    else:
        attrs.update(shape="circle", margin="0.02")
    return attrs


DELAY_ATTRS = {
    "shape": "square", "label": "", "style": "filled", "fillcolor": "black", "color": "black",
    "width": "0.13", "height": "0.13", "fixedsize": "true",
}
ELLIPSIS_ATTRS = {"shape": "plaintext", "fontsize": "16", "fontcolor": "#444444"}


def edge_label(text: str) -> str:
    """Edge label HTML: the parameters carried, in bold (U, V, W; W_enc with its subscript)."""
    if not text:
        return ""
    return "<" + ", ".join(symbol(p) for p in text.split(",")) + ">"


def fmt(x: Any) -> str:
    """Short number for labels: 3.2e-05, 0.41, 12.0, nan."""
    if x is None:
        return "–"
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    if 1e-2 <= abs(x) < 1e3:
        return f"{x:.3g}"
    return f"{x:.1e}"
