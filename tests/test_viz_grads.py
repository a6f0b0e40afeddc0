"""Gradient overlays (viz.grads): per-row colour and width, the colour bar, diagnose's marks."""
from __future__ import annotations

import math
import re

import pytest

import flow_graphs as fg
import graphs
import viz
from viz.grads import PALETTE, Scale, edge_overlay, legend, node_overlay


def fill_of(src, label_start):
    m = re.search(r'\[label=<' + re.escape(label_start) + r'[^\]]*fillcolor="(#\w+)"', src)
    return m.group(1)


def marked(src, arrow="↓"):
    """(name, step) of every node whose label carries the mark (the legend's arrow excluded)."""
    return {(m.group(1), int(m.group(2))) for m in re.finditer(
        r"<B>(\w+)</B><SUP>\((\d+)\)</SUP>[^\]]*‖∇‖[^\]<]*" + arrow, src)}


def test_scale_positions_per_row_and_plain_norms():
    s = Scale.of([1e-6, 1e-3, 1.0, None, math.nan, 0.0])
    assert (s.lo, s.hi) == (-6.0, 0.0) and s.position(1e-3) == pytest.approx(0.5)
    assert s.status(1e-9) == "ok" and s.status(math.inf) == "nonfinite"   # no report: no marks
    assert s.status(None) == "none"
    rows = Scale.of([{"scope": "rnn", "name": "h", "grad_norm": 1e-6},
                     {"scope": "rnn", "name": "h", "grad_norm": 1e-4},
                     {"scope": "", "name": "L", "grad_norm": 1.0}])
    h = {"scope": "rnn", "name": "h"}
    assert rows.position(1e-4, h) == 1.0 and rows.position(1e-6, h) == 0.0   # h's own range
    assert rows.position(1e-4) == pytest.approx(2 / 6)                         # figure's range


def test_overlay_colours_by_row_and_marks_nan_red():
    s = Scale.of([{"scope": "", "name": "h", "grad_norm": x} for x in (1e-6, 1e-3)])
    big, _ = node_overlay({"scope": "", "name": "h", "grad_norm": 1e-3}, s)
    small, note = node_overlay({"scope": "", "name": "h", "grad_norm": 1e-6}, s)
    assert big["fillcolor"] == PALETTE[-1] and small["fillcolor"] == PALETTE[0]
    assert "↓" not in note          # small is not vanishing: only diagnose says that
    nan, note = node_overlay(math.nan, s)
    assert nan["fillcolor"] == "#e00000" and "nan" in note
    assert edge_overlay(1e-3, s, {"scope": "", "name": "h"})["penwidth"] == "4.00"


def test_legend_is_a_colour_bar_inside_the_figure():
    src = viz.unfolded(fg.elman(T=5, last_only=True, flow=False)[0], grads=True).source
    assert all(f'BGCOLOR="{c}"' in src for c in PALETTE)          # the bar, drawn in the label
    assert "own row" in src and "diagnose: HEALTHY" in src
    assert legend(Scale(0.0, 0.0)) == "<gradient norms: none recorded>"


def test_hidden_states_span_the_palette_not_one_pale_colour():
    # the contradiction: with the scale anchored on L every h(t) was the same pale colour
    g, _, _ = fg.elman(T=8, last_only=True, flow=False)
    src = viz.unfolded(g, max_steps=None, grads=True).source
    fills = [PALETTE.index(fill_of(src, f"<B>h</B><SUP>({t})</SUP>")) for t in range(1, 9)]
    assert fills[-1] == len(PALETTE) - 1 and fills[0] == 0           # h's own range, end to end
    assert fills == sorted(fills)                                    # darker towards the loss


def test_marks_are_diagnoses_marks_and_nothing_else():
    # the contradiction: ↓ was "below 1e-4 of the largest norm in the figure" (the loss node),
    # so a well-fitted model scaled down got ↓ everywhere while diagnose said HEALTHY
    g, _, _ = fg.elman(T=6, loss_scale=1e-6, last_only=True, flow=False)
    report = viz.diagnose(g)
    assert report.verdict == "healthy"
    for view in (viz.unfolded(g, max_steps=None, grads=True), viz.folded(g, grads=True)):
        assert not marked(view.source) and "↓ 1" not in view.source
    g, _, _ = fg.elman(T=30, scale=0.5)                              # long-range flow dies
    report = viz.diagnose(g)
    f = report.findings[0]
    assert report.verdict == "vanishing" and f.horizon < f.span
    src = viz.unfolded(g, max_steps=None, grads=True).source
    want = {("h", t) for t, m in f.marks.items() if m == "vanishing"}
    assert want and marked(src) == want                              # the same steps, only h
    assert all(t < 30 - f.horizon for _, t in want)
    assert re.search(r"<B>h</B>[^\]]*‖∇‖[^\]<]*↓", viz.folded(g, grads=True).source)


def test_exploding_marks_follow_the_report():
    g, _, _ = fg.elman(T=30, scale=6.0)
    report = viz.diagnose(g)
    assert report.verdict == "exploding"
    src = viz.unfolded(g, max_steps=None, grads=True).source
    want = {("h", t) for t, m in report.findings[0].marks.items() if m == "exploding"}
    assert want and marked(src, "↑") == want


def test_nan_gradients_are_red_in_both_views():
    G = graphs.with_grads(graphs.elman(5), nan_at=30)
    assert "#e00000" in viz.unfolded(G, grads=True).source
    src = viz.folded(G, grads=True).source
    assert "#e00000" in src and "NaN/inf" in src


def test_folded_overlay_shows_min_median_max_per_role():
    src = viz.folded(graphs.elman(5, grads=True), grads=True).source
    # h at steps 1..5 has norms 0.5**4 .. 1
    assert "‖∇‖ 0.0625 · 0.25 · 1" in src


def test_tree_overlay_is_normalised_per_row():
    src = viz.unfolded(fg.tree(), grads=True).source
    fills = set(re.findall(r'<B>h</B>[^\]]*fillcolor="(#\w+)"', src))
    assert PALETTE[-1] in fills and len(fills) >= 3
