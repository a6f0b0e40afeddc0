"""Gradient-flow overlays: colour and pen width by log10 of the gradient norm, per variable row.

Flow: viz.unfolded / viz.folded / viz.tree (with ``grads=True``) -> **viz.grads** -> DOT
attributes; the marks come from viz.diagnose.

Each variable (scope, name) is normalised on its own range: within h's row the largest
‖∂L/∂h(t)‖ is dark and the smallest pale, so the fade of h back through time shows even though
h is orders of magnitude below the loss node. The legend is a colour bar drawn inside the
figure. The marks are the verdict of :func:`viz.diagnose.diagnose` for that node, never a
comparison with the loss: ↓ (dashed grey border) for a state beyond its variable's effective
horizon, ↑ (orange double border) for one where the flow grows past 1 / ``VANISH_RATIO`` of its
local value, red for NaN/inf.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from typing import Any, Iterable

from .diagnose import Report, diagnose
from .horizon import EXPLODE_NORM, VANISH_RATIO
from .schema import is_finite
from .style import fmt

__all__ = ["EXPLODE_NORM", "VANISH_RATIO", "PALETTE", "Scale", "node_overlay", "overlay_node",
           "edge_overlay", "legend"]

#: sequential blues, pale (small gradient) to dark (large)
PALETTE = ("#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5",
           "#08519c", "#08306b")
NONFINITE = "#e00000"
VANISH = "#999999"
EXPLODE = "#e69138"


def row_key(d: dict) -> tuple:
    """The row a node belongs to: its variable (scope, name), or its op when unnamed."""
    return (d.get("scope") or "", d.get("name") or d.get("op"))


def _logs(norms: Iterable[Any]) -> tuple[float, float] | None:
    logs = [math.log10(x) for x in norms if is_finite(x) and x > 0]
    return (min(logs), max(logs)) if logs else None


@dataclass(frozen=True)
class Scale:
    """log10 ranges of the finite, positive gradient norms on one figure, one per variable row,
    and the :class:`viz.diagnose.Report` whose marks the figure draws.

    ``lo``/``hi`` span the whole figure; ``rows`` maps a row key (see :func:`row_key`) to its
    own ``(lo, hi)``.
    """

    lo: float
    hi: float
    rows: dict = field(default_factory=dict)
    report: Report | None = None

    @classmethod
    def of(cls, items: Iterable[Any], graph: Any = None) -> "Scale":
        """The scale of ``items``: gradient norms, or node-attribute dicts (then per row).

        Parameters
        ----------
        items : iterable of float or dict
            Norms (one row for all), or node dicts with ``grad_norm``, ``scope``, ``name``.
        graph : networkx.DiGraph or anything :func:`viz.schema.load` takes, optional
            The recorded graph; its :func:`viz.diagnose.diagnose` report gives the marks.

        Returns
        -------
        Scale

        Examples
        --------
        >>> Scale.of([1e-6, 1e-3, 1.0]).position(1e-3)
        0.5
        """
        rows: dict[tuple, list] = {}
        every = []
        for it in items:
            if isinstance(it, dict):
                g = it.get("grad_norm")
                if it.get("kind") != "ellipsis":
                    rows.setdefault(row_key(it), []).append(g)
            else:
                g = it
            every.append(g)
        lo_hi = _logs(every) or (0.0, 0.0)
        ranges = {k: r for k, v in rows.items() if (r := _logs(v)) is not None}
        report = diagnose(graph) if graph is not None else None
        return cls(lo_hi[0], lo_hi[1], ranges, report)

    def _range(self, node: dict | None) -> tuple[float, float]:
        if node is not None:
            r = self.rows.get(row_key(node))
            if r is not None:
                return r
        return self.lo, self.hi

    def position(self, norm: float, node: dict | None = None) -> float:
        """Where ``norm`` sits on its row's scale (the figure's without a node), 0 to 1."""
        lo, hi = self._range(node)
        if norm <= 0:
            return 0.0
        if hi - lo < 1e-12:
            return 1.0
        return min(1.0, max(0.0, (math.log10(norm) - lo) / (hi - lo)))

    def status(self, norm: Any, node: dict | None = None) -> str:
        """``none`` | ``nonfinite`` | ``vanishing`` | ``exploding`` | ``ok``.

        Vanishing and exploding are the report's marks for the node's (scope, name, step):
        the same judgement :func:`viz.diagnose.diagnose` prints.
        """
        if norm is None:
            return "none"
        if not is_finite(norm):
            return "nonfinite"
        if self.report is not None and node is not None:
            mark = self.report.status(node.get("scope") or "", node.get("name"),
                                      node.get("step"))
            if mark is None and not node.get("name"):
                mark = self.report.status(node.get("scope") or "", node.get("op"),
                                          node.get("step"))
            return mark or "ok"
        return "ok"


def _split(norm: Any) -> tuple[Any, dict | None]:
    """A node dict gives (its grad_norm, itself); a number gives (it, None)."""
    if isinstance(norm, dict):
        return norm.get("grad_norm"), norm
    return norm, None


def node_overlay(norm: Any, scale: Scale, stats: tuple | None = None) -> tuple[dict, str]:
    """DOT attributes for a node with gradient norm ``norm``, and a note for its label.

    ``norm`` is a number or the node's attribute dict (then its row's range and the report's
    mark apply). ``stats`` (min, median, max) over steps replaces the note in the folded view.
    """
    value, node = _split(norm)
    status = scale.status(value, node)
    if status == "none":
        return {"fillcolor": "#ffffff", "color": "#bbbbbb", "fontcolor": "#888888"}, ""
    if status == "nonfinite":
        return ({"fillcolor": NONFINITE, "color": "#000000", "fontcolor": "white",
                 "penwidth": "2.5"}, f"∇ {fmt(value)}")
    pos = scale.position(value, node)
    colour = PALETTE[round(pos * (len(PALETTE) - 1))]
    attrs = {"fillcolor": colour, "fontcolor": "white" if pos > 0.6 else "black"}
    note = f"‖∇‖ {fmt(value)}"
    if stats is not None:
        note = f"‖∇‖ {fmt(stats[0])} · {fmt(stats[1])} · {fmt(stats[2])}"
    if status == "vanishing":
        attrs.update(color=VANISH, style="filled,dashed", penwidth="1.5")
        note += " ↓"
    elif status == "exploding":
        attrs.update(color=EXPLODE, peripheries="2", penwidth="2")
        note += " ↑"
    return attrs, note


def overlay_node(attrs: dict, norm: Any, scale: Scale) -> dict:
    """``attrs`` of an unfolded node with its gradient overlay: colours, and the norm written
    small under its label (a circle becomes an ellipse, which holds two lines). ``norm`` is a
    number or the node's attribute dict (per-row colour, the report's mark)."""
    over, note = node_overlay(norm, scale)
    attrs.update(over)
    if note:
        attrs["label"] = attrs["label"][:-1] + \
            f'<BR/><FONT POINT-SIZE="9">{escape(note)}</FONT>>'
        if attrs.get("shape") == "circle":  # a circle round a two-line label balloons
            attrs.update(shape="ellipse", margin="0.04,0.02")
    return attrs


def edge_overlay(norm: Any, scale: Scale, target: dict | None = None) -> dict:
    """DOT attributes for an edge carrying a gradient contribution of norm ``norm``.

    With ``target`` (the consumer node's attribute dict) colour and width follow that
    variable's row range, as its node does.
    """
    if norm is None:
        return {"color": "#cccccc"}
    if not is_finite(norm):
        return {"color": NONFINITE, "penwidth": "3"}
    pos = scale.position(norm, target)
    colour = PALETTE[max(3, round(pos * (len(PALETTE) - 1)))]
    return {"color": colour, "penwidth": f"{0.6 + 3.4 * pos:.2f}"}


def legend(scale: Scale) -> str:
    """A graph label (HTML-like): a colour bar, what it measures, and what the marks mean."""
    if scale.hi == scale.lo == 0.0 and not scale.rows:
        return "<gradient norms: none recorded>"
    cells = "".join(f'<TD BGCOLOR="{c}" WIDTH="22" HEIGHT="12"></TD>' for c in PALETTE)
    where = ("within each variable's own row (its smallest → its largest)" if scale.rows
             else f"from {fmt(10 ** scale.lo)} to {fmt(10 ** scale.hi)}")
    verdict = ""
    if scale.report is not None:
        verdict = f"<BR/>diagnose: {escape(scale.report.verdict.upper())}"
    bar = ('<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="0"><TR>'
           f"<TD>small </TD>{cells}<TD> large</TD></TR></TABLE>")
    return ('<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">'
            f"<TR><TD>{bar}</TD></TR>"
            f"<TR><TD>log ‖∂L/∂·‖, colour and width {escape(where)}"
            f"<BR/>↓ beyond the horizon (flow from L(τ) &lt; {VANISH_RATIO:g} × its local "
            f"value), ↑ growing back through time, red: NaN/inf{verdict}</TD></TR></TABLE>>")
