"""Gradient overlays (viz.grads), diagnose (viz.diagnose) and charts (viz.charts)."""
from __future__ import annotations

import math
import re

import pytest

import graphs
import viz
from viz.grads import PALETTE, Scale, node_overlay


def fill_of(src, label_start):
    m = re.search(r'\[label=<' + re.escape(label_start) + r'[^\]]*fillcolor="(#\w+)"', src)
    return m.group(1)


def test_scale_positions_and_status():
    s = Scale.of([1e-6, 1e-3, 1.0, None, math.nan, 0.0])
    assert (s.lo, s.hi) == (-6.0, 0.0)
    assert s.position(1e-3) == pytest.approx(0.5)
    assert s.status(1e-6) == "vanishing" and s.status(0.5) == "ok"
    assert s.status(1e5) == "exploding" and s.status(math.inf) == "nonfinite"
    assert s.status(None) == "none"


def test_overlay_colours_by_log_norm_and_marks_nan_red():
    s = Scale.of([1e-6, 1.0])
    big, _ = node_overlay(1.0, s)
    small, note = node_overlay(1e-7, s)
    assert big["fillcolor"] == PALETTE[-1] and small["fillcolor"] == PALETTE[0]
    assert "↓" in note and small["style"] == "filled,dashed"
    nan, note = node_overlay(math.nan, s)
    assert nan["fillcolor"] == "#e00000" and "nan" in note


def test_unfolded_overlay_darkens_towards_the_loss():
    G = graphs.elman(20, grads=True)
    src = viz.unfolded(G, max_steps=None, grads=True).source
    assert "‖∂L/∂·‖" in src  # the legend
    first, last = fill_of(src, "<B>h</B><SUP>(1)</SUP>"), fill_of(src, "<B>h</B><SUP>(20)</SUP>")
    assert PALETTE.index(first) < PALETTE.index(last)
    # 0.5 ** 14 < 1e-4: h(1..6) are vanishing, h(7) is not (plus the legend's own arrow)
    assert src.count("↓") == 1 + 6 * 4  # h, o, yhat, L at steps 1..6
    assert re.search(r"<B>h</B><SUP>\(6\)</SUP>[^>]*>[^\]]*↓", src)
    assert not re.search(r"<B>h</B><SUP>\(7\)</SUP>[^>]*>[^\]]*↓", src)
    assert re.search(r"penwidth=[34]\.\d\d", src)  # edges thicken with the gradient


def test_nan_gradients_are_red_in_both_views():
    G = graphs.with_grads(graphs.elman(5), nan_at=30)
    assert "#e00000" in viz.unfolded(G, grads=True).source
    src = viz.folded(G, grads=True).source
    assert "#e00000" in src and "NaN/inf" in src


def test_folded_overlay_shows_min_median_max_per_role():
    src = viz.folded(graphs.elman(5, grads=True), grads=True).source
    # h at steps 1..5 has norms 0.5**4 .. 1
    assert "‖∇‖ 0.0625 · 0.25 · 1" in src


def test_diagnose_finds_vanishing_gradients_with_figures():
    r = viz.diagnose(graphs.elman(40, grads=True))
    assert r.verdict == "vanishing"
    (s,) = r.series
    assert s.variable == "h" and s.steps == tuple(range(1, 41))
    assert s.far == pytest.approx(0.5 ** 39) and s.mean_gain() == pytest.approx(0.5)
    assert "1.8e-12 of its maximum" in r.reasons[0]
    assert "VANISHING" in str(r)


def test_diagnose_healthy_exploding_and_backward_loops():
    assert viz.diagnose(graphs.elman(6, grads=True)).verdict == "healthy"
    G = graphs.with_grads(graphs.elman(30), decay=2.0)  # grows back through time
    r = viz.diagnose(G)
    assert r.verdict == "exploding" and "reaches" in r.reasons[0]
    bi = viz.diagnose(graphs.bidirectional(5, grads=True))
    assert {s.variable: s.direction for s in bi.series} == {"h": 1, "g": -1}


def test_diagnose_locates_the_first_nonfinite_gradient():
    G = graphs.elman(6, grads=True)
    target = max(n for n, d in G.nodes(data=True) if d["op"] == "tanh" and d["step"] == 4)
    graphs.with_grads(G, nan_at=target)
    r = viz.diagnose(G)
    assert r.verdict == "non-finite"
    assert r.first_nonfinite == {"node": target, "op": "tanh", "name": "h", "scope": "rnn",
                                 "step": 4}
    assert "first non-finite gradient: tanh" in str(r)


def test_diagnose_without_gradients_says_what_to_do():
    r = viz.diagnose(graphs.elman(3))
    assert r.verdict == "no gradients" and "keep_grads=True" in r.reasons[0]


def test_param_contributions_per_step():
    per = viz.param_contributions(graphs.elman(4, grads=True))
    assert sorted(per) == ["U", "V", "W", "b", "c"]
    assert sorted(per["W"]) == [1, 2, 3, 4]
    assert per["W"][4] == pytest.approx(1.0) and per["W"][1] == pytest.approx(0.125)


def test_gradient_chart_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    out = viz.gradient_chart(graphs.elman(20, grads=True), tmp_path / "g.png", title="t")
    data = open(out, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_gradient_chart_refuses_a_graph_without_gradients(tmp_path):
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match="keep_grads=True"):
        viz.gradient_chart(graphs.elman(3), tmp_path / "g.png")


def test_gradient_chart_says_when_nothing_flows_through_time(tmp_path):
    pytest.importorskip("matplotlib")
    b = graphs.Builder()
    h = b.affine([("W", b.input("x"))], name="h")  # no step tags: a feed-forward net
    graphs.with_grads(b.G)
    with pytest.raises(ValueError, match="tg.step"):
        viz.gradient_chart(b.G, tmp_path / "g.png")
    assert h in b.G
