"""Gradient-flow overlays: colour and pen width by log10 of the gradient norm.

Flow: viz.unfolded / viz.folded (with ``grads=True``) -> **viz.grads** -> DOT attributes.

The scale is set by the norms on the figure: the largest finite norm is dark, the smallest pale.
A norm below ``VANISH_RATIO`` times the largest is *vanishing* (dashed grey border, ↓), one
above ``EXPLODE_NORM`` is *exploding* (orange double border, ↑), NaN/inf is red. The verdict for
a whole graph lives in :mod:`viz.diagnose`.
"""
from __future__ import annotations

import math
from html import escape
from dataclasses import dataclass
from typing import Any, Iterable

from .schema import is_finite
from .style import fmt

VANISH_RATIO = 1e-4
EXPLODE_NORM = 1e4

#: sequential blues, pale (small gradient) to dark (large)
PALETTE = ("#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5",
           "#08519c", "#08306b")
NONFINITE = "#e00000"
VANISH = "#999999"
EXPLODE = "#e69138"


@dataclass(frozen=True)
class Scale:
    """log10 range of the finite, positive gradient norms on one figure."""

    lo: float
    hi: float

    @classmethod
    def of(cls, norms: Iterable[Any]) -> "Scale":
        logs = [math.log10(x) for x in norms if is_finite(x) and x > 0]
        if not logs:
            return cls(0.0, 0.0)
        return cls(min(logs), max(logs))

    def position(self, norm: float) -> float:
        """Where ``norm`` sits on the scale, 0 (smallest) to 1 (largest)."""
        if norm <= 0:
            return 0.0
        if self.hi - self.lo < 1e-12:
            return 1.0
        return min(1.0, max(0.0, (math.log10(norm) - self.lo) / (self.hi - self.lo)))

    def status(self, norm: Any) -> str:
        """``none`` | ``nonfinite`` | ``vanishing`` | ``exploding`` | ``ok``."""
        if norm is None:
            return "none"
        if not is_finite(norm):
            return "nonfinite"
        if norm > EXPLODE_NORM:
            return "exploding"
        if norm < (10 ** self.hi) * VANISH_RATIO:
            return "vanishing"
        return "ok"


def node_overlay(norm: Any, scale: Scale, stats: tuple | None = None) -> tuple[dict, str]:
    """DOT attributes for a node with gradient norm ``norm``, and a note for its label.

    ``stats`` (min, median, max) over steps replaces the note in the folded view.
    """
    status = scale.status(norm)
    if status == "none":
        return {"fillcolor": "#ffffff", "color": "#bbbbbb", "fontcolor": "#888888"}, ""
    if status == "nonfinite":
        return ({"fillcolor": NONFINITE, "color": "#000000", "fontcolor": "white",
                 "penwidth": "2.5"}, f"∇ {fmt(norm)}")
    pos = scale.position(norm)
    colour = PALETTE[round(pos * (len(PALETTE) - 1))]
    attrs = {"fillcolor": colour, "fontcolor": "white" if pos > 0.6 else "black"}
    note = f"‖∇‖ {fmt(norm)}"
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
    small under its label (a circle becomes an ellipse, which holds two lines)."""
    over, note = node_overlay(norm, scale)
    attrs.update(over)
    if note:
        attrs["label"] = attrs["label"][:-1] + \
            f'<BR/><FONT POINT-SIZE="9">{escape(note)}</FONT>>'
        if attrs.get("shape") == "circle":  # a circle round a two-line label balloons
            attrs.update(shape="ellipse", margin="0.04,0.02")
    return attrs


def edge_overlay(norm: Any, scale: Scale) -> dict:
    """DOT attributes for an edge carrying a gradient contribution of norm ``norm``."""
    status = scale.status(norm)
    if status == "none":
        return {"color": "#cccccc"}
    if status == "nonfinite":
        return {"color": NONFINITE, "penwidth": "3"}
    pos = scale.position(norm)
    colour = PALETTE[max(3, round(pos * (len(PALETTE) - 1)))]
    return {"color": colour, "penwidth": f"{0.6 + 3.4 * pos:.2f}"}


def legend(scale: Scale) -> str:
    """A graph label explaining the overlay (HTML-like)."""
    if scale.hi == scale.lo == 0.0:
        return "<gradient norms: none recorded>"
    return (f"<‖∂L/∂·‖ from {fmt(10 ** scale.lo)} (pale) to {fmt(10 ** scale.hi)} (dark)<BR/>"
            f"↓ vanishing (&lt; {VANISH_RATIO:g} × max), ↑ exploding (&gt; {EXPLODE_NORM:g}), "
            f"red: NaN/inf>")
