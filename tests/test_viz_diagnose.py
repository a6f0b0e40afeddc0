"""viz.diagnose and viz.horizon: one verdict from the flow of one loss term against its local value.

The horizon and decay are checked against an independent numpy computation of the seed's BPTT
recursion (Elman) and against a direct reading of the exported F (bidirectional, seq2seq, deep);
the verdicts against the cases the issue lists (teacher forcing, unnamed graphs, trees).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import flow_graphs as fg
import graphs
import viz
from viz.horizon import VANISH_RATIO


def horizon_of(ratios):
    """Steps back while ratio >= VANISH_RATIO (ratios from the local step back)."""
    k = 0
    while k + 1 < len(ratios) and ratios[k + 1] >= VANISH_RATIO:
        k += 1
    return k


def bptt_ratios(m, T):
    """‖∂L(T)/∂h(t)‖ / ‖∂L(T)/∂h(T)‖, t = T..1, from the seed's formulas in numpy (eq.
    10.8-10.11 forward; grad h(t) = Wᵀ diag(1 − h(t+1)²) grad h(t+1) backward)."""
    x, y = m.inputs
    U, W, b = m.cell.U.data, m.cell.W.data, m.cell.b.data
    V, c = m.V.data, m.c.data
    hs = [np.zeros((x.shape[0], W.shape[0]))]
    for t in range(T):
        hs.append(np.tanh(b + hs[-1] @ W.T + U[:, x[:, t]].T))   # one-hot x(t): U's column
    o = hs[T] @ V.T + c
    p = np.exp(o - o.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    p[np.arange(len(p)), y[:, T - 1]] -= 1.0                       # grad o(T) = ŷ − y
    dh, out = p @ V, []
    for t in range(T, 0, -1):
        out.append(np.linalg.norm(dh))
        dh = ((1 - hs[t] ** 2) * dh) @ W
    return [x / out[0] for x in out]


def test_elman_horizon_and_decay_equal_the_seeds_bptt():
    T = 40
    g, f, m = fg.elman(T=T, scale=0.6)
    r = viz.diagnose(g)
    (fd,) = r.findings
    ref = bptt_ratios(m, T)
    assert fd.loss == f"L({T})" and fd.source == "flow" and fd.span == T - 1
    np.testing.assert_allclose([x for _, x in fd.profile], ref, rtol=1e-12)
    assert fd.horizon == horizon_of(ref) < T - 1
    slope = np.polyfit(np.arange(T), np.log(ref), 1)[0]
    assert fd.decay == pytest.approx(math.exp(slope), rel=1e-9)
    assert fd.spectra["rho"] == pytest.approx(np.abs(np.linalg.eigvals(m.cell.W.data)).max())
    sig = f["h"].sigma[1:]                     # checked against diag(1 − h²) W in test_flow
    assert fd.spectra["sigma"] == pytest.approx(math.exp(np.log(sig).mean()), rel=1e-12)
    assert r.verdict == "vanishing"
    text = str(r)
    assert f"horizon {fd.horizon} of {T - 1}" in text and "ρ(W)" in text and "σ_max" in text
    assert "gated cell" in text                                    # what to try


def test_elman_last_loss_without_flow_uses_the_total_gradient():
    g, _, m = fg.elman(T=25, scale=0.6, last_only=True, flow=False)
    (fd,) = viz.diagnose(g).findings
    assert fd.source == "single loss term"
    norms = {n["step"]: n["grad_norm"] for _, n in g.to_networkx().nodes(data=True)
             if n["name"] == "h" and n["step"] is not None}
    ref = [norms[t] / norms[25] for t in range(25, 0, -1)]
    assert [x for _, x in fd.profile] == pytest.approx(ref, rel=1e-12)
    assert fd.horizon == horizon_of(ref)


@pytest.mark.parametrize("build, labels", [
    (fg.bidirectional, {"h": 1, "g": -1}),
    # the figures' names (viz.names): the report and the pictures agree
    (fg.seq2seq, {"h_enc": 1, "h_dec": 1}),
    (fg.deep, {"h_1": 1, "h_2": 1}),
])
def test_findings_read_the_exported_flow(build, labels):
    g = build()
    r = viz.diagnose(g)
    assert {f.variable: f.direction for f in r.findings} == labels
    flows = g.attrs["flow"]["variables"]
    for f in r.findings:
        (v,) = [v for v in flows if v["scope"] == f.scope]
        F = np.array(v["F"])
        reach = (F > 0).sum(axis=1)
        rows = np.flatnonzero(reach == reach.max())
        row = rows[-1] if f.direction > 0 else rows[0]                # the longest reach
        cols = np.flatnonzero(F[row] > 0)
        steps = np.array(v["steps"])                                 # recording order: g(τ..1)
        order = cols[np.argsort(-steps[cols] * f.direction)]         # local state first
        ratios = F[row, order] / F[row, order[0]]
        assert [x for _, x in f.profile] == pytest.approx(list(ratios), rel=1e-12)
        assert f.horizon == horizon_of(list(ratios)) and f.span == len(ratios) - 1
        assert f.spectra["rho"] == pytest.approx(v["rho"])
    assert r.verdict in ("healthy", "vanishing")


def test_a_loss_at_every_step_without_flow_is_not_called_healthy():
    # the contradiction: ‖∂L/∂h(t)‖ mixes L(t) with later terms, so a dead long-range
    # gradient read HEALTHY
    g, _, _ = fg.elman(T=40, scale=0.6, flow=False)
    r = viz.diagnose(g)
    assert r.verdict == "undetermined"
    assert "tg.flow" in str(r) and r.findings[0].source == "mixed"
    g, _, _ = fg.elman(T=40, scale=0.6)
    assert viz.diagnose(g).verdict == "vanishing"


def test_teacher_forcing_has_no_gain_to_report():
    r = viz.diagnose(fg.jordan_teacher())
    assert r.verdict == "no recurrence" and r.series == () and r.findings == ()
    assert "teacher forcing" in r.reasons[0] and "gain" in r.reasons[0]


def test_an_unnamed_graph_gets_a_verdict_from_its_carried_state():
    r = viz.diagnose(fg.unnamed(T=14, scale=0.5))
    (f,) = r.findings
    assert f.variable == "tanh" and r.verdict == "vanishing" and f.horizon < f.span == 13
    assert "name it" in str(r)


def test_without_steps_the_report_says_how_to_tag_them():
    b = graphs.Builder()
    b.affine([("W", b.input("x"))], name="h")
    r = viz.diagnose(graphs.with_grads(b.G))
    assert r.verdict == "no recurrence" and "tg.step(t)" in r.reasons[0]


def test_a_tree_is_judged_by_height():
    r = viz.diagnose(fg.tree())
    (f,) = r.findings
    assert f.unit == "height" and "heights back" in f.summary()
    assert r.series[0].unit == "height"


def test_exploding_with_the_spectra_behind_it():
    g, f, _ = fg.elman(T=30, scale=6.0)
    r = viz.diagnose(g)
    assert r.verdict == "exploding"
    (fd,) = r.findings
    assert fd.spectra["rho"] == pytest.approx(f["h"].rho) and fd.spectra["rho"] > 1
    assert "clip" in str(r) and "grows back through time" in str(r)


def test_nonfinite_and_no_gradients_still_reported():
    G = graphs.elman(6, grads=True)
    target = max(n for n, d in G.nodes(data=True) if d["op"] == "tanh" and d["step"] == 4)
    graphs.with_grads(G, nan_at=target)
    r = viz.diagnose(G)
    assert r.verdict == "non-finite"
    assert r.first_nonfinite == {"node": target, "op": "tanh", "name": "h", "scope": "rnn",
                                 "step": 4}
    assert "first non-finite gradient: tanh" in str(r)
    r = viz.diagnose(graphs.elman(3))
    assert r.verdict == "no gradients" and "keep_grads=True" in r.reasons[0]


def test_report_reads_as_text_and_html_and_from_json(tmp_path):
    g, _, _ = fg.elman(T=30, scale=0.5)
    g.save(tmp_path / "g.json")
    a, b = viz.diagnose(g), viz.diagnose(str(tmp_path / "g.json"))
    assert str(a) == str(b) and a.findings == b.findings
    html = a._repr_html_()
    assert html.startswith("<div>") and "VANISHING" in html and "<li>" in html
    assert str(a).splitlines()[0] == "gradient flow: VANISHING"


def test_largest_and_smallest_use_the_short_names_the_findings_use():
    g, _, _ = fg.elman(T=6)
    r = viz.diagnose(g)
    labels = [k for k, _ in r.largest + r.smallest]
    assert labels and all("/" not in k for k in labels) and "h" in labels, labels
