"""The fused Elman recurrence (``RNN(fused=True)``): the per-step recording's loss and gradients
to 1e-12, the seed's BPTT formulas to 1e-10, fewer ops, and the fallbacks that keep it honest."""
from __future__ import annotations

import numpy as np
import pytest

import tinygraph as tg
from tinygraph import nn

from nn_helpers import rel_err
from reference_bptt import elman_bptt, random_elman


def recorded(t):
    """The ops on `t`'s tape as recorded (the export draws a fused op as its steps)."""
    return [t._tape.op_name(i) for i in range(len(t._tape))]


def run(m, x, y, fused, state=None, lengths=None, mask=None):
    m.fused = fused
    m.zero_grad()
    out = m(x, state=state, lengths=lengths)
    if m.output == "every":
        loss = nn.sequence_loss(out.o, y, mask=mask, reduction="sum")
    else:
        loss = tg.cross_entropy(out.last, y[:, 0], reduction="sum")
    loss.backward(keep_grads=True)
    return out, loss, {k: p.grad.copy() for k, p in m.named_parameters()}


@pytest.mark.parametrize("output", ["every", "last"])
@pytest.mark.parametrize("ids", [True, False])
def test_fused_equals_the_per_step_recording(ids, output):
    rng = np.random.default_rng(0)
    B, T, D, H, K = 3, 9, 4, 5, 3
    m = nn.RNN(D, H, K, output=output, rng=1)
    x = rng.integers(0, D, (B, T)) if ids else rng.standard_normal((B, T, D))
    y = rng.integers(0, K, (B, T))
    h0 = rng.standard_normal((B, H))
    o1, l1, g1 = run(m, x, y, False, state=h0)
    o2, l2, g2 = run(m, x, y, True, state=h0)
    assert abs(l1.item() - l2.item()) <= 1e-12 * abs(l1.item())
    for k in g1:
        assert rel_err(g2[k], g1[k]) < 1e-12, k
    assert len(o2.h) == T and o2.steps == o1.steps
    for a, b in zip(o1.h, o2.h):             # h(t) step by step
        np.testing.assert_allclose(b.data, a.data, rtol=0, atol=1e-14)
    assert len(recorded(l2)) < len(recorded(l1))          # fewer ops recorded (export: equal)


def test_fused_gradients_equal_the_seed_formulas():
    p, x, y = random_elman(B=4, T=30, D=3, H=6, K=5, seed=2, scale=0.9)
    m = nn.RNN(3, 6, 5, rng=0, fused=True)
    m.load_state_dict({"cell.U": p["U"], "cell.W": p["W"], "cell.b": p["b"], "V": p["V"],
                       "c": p["c"]})
    out, loss, g = run(m, x, y, True)
    ref = elman_bptt(**p, x=x, y=y)
    assert abs(loss.item() - ref["loss"]) <= 1e-12 * abs(ref["loss"])
    for k, key in {"U": "cell.U", "W": "cell.W", "b": "cell.b", "V": "V", "c": "c"}.items():
        assert rel_err(g[key], ref[k]) < 1e-10, k
    for t in range(1, 31):
        np.testing.assert_allclose(out.h[t - 1].data, ref["h"][t], rtol=1e-12, atol=1e-15)


def test_fused_graph_tags_h_o_and_l_with_their_steps():
    m = nn.RNN(4, 5, 3, rng=0, fused=True)
    loss = nn.sequence_loss(m(np.array([[0, 1, 2, 3]])).o, np.array([[0, 1, 2, 0]]))
    tape = loss._tape
    scan = [i for i in range(len(tape)) if tape.op_name(i) == "elman_scan"]
    assert len(scan) == 1 and tape.node(scan[0]).scope == "rnn/cell"
    nodes = [d for _, d in tg.trace(loss).to_networkx().nodes(data=True)]
    assert "elman_scan" not in {d["op"] for d in nodes}          # drawn as its steps
    for v in ("h", "o", "L"):
        got = [d["step"] for d in nodes if d["name"] == v and d["kind"] == "op"]
        assert got[:4] == [1, 2, 3, 4], v


def test_a_float_input_that_requires_grad_is_recorded_per_step_with_its_gradient():
    rng = np.random.default_rng(3)
    m = nn.RNN(3, 4, 2, rng=0)
    xs, y = rng.standard_normal((2, 5, 3)), rng.integers(0, 2, (2, 5))
    grads = []
    for fused in (False, True):
        x = tg.tensor(xs, requires_grad=True)
        _, loss, _ = run(m, x, y, fused)
        grads.append(x.grad.copy())
        assert "elman_scan" not in recorded(loss)    # its slices x(t) are recorded per step
    assert rel_err(grads[1], grads[0]) < 1e-12


def test_padding_and_per_step_copies_fall_back_to_the_per_step_recording():
    rng = np.random.default_rng(4)
    m = nn.RNN(4, 5, 3, rng=0, fused=True)
    x, y = rng.integers(0, 4, (2, 5)), rng.integers(0, 3, (2, 5))

    ops = recorded
    _, loss, _ = run(m, x, y, True, lengths=np.array([5, 3]))
    assert "elman_scan" not in ops(loss) and "where" in ops(loss)
    with nn.per_step_copies():
        out = m(x)
    assert "elman_scan" not in ops(nn.sequence_loss(out.o, y))
    assert "elman_scan" in ops(nn.sequence_loss(m(x).o, y))


@pytest.mark.parametrize("scale", [0.5, 3.0])      # vanishing and exploding-ish recurrences
def test_flow_of_a_fused_run_equals_the_per_step_flow(scale):
    """F[tau', t] = |dL(tau')/dh(t)| and the Jacobian spectra from the fused op's BPTT."""
    rng = np.random.default_rng(6)
    B, T, D, H, K = 2, 7, 4, 5, 3
    m = nn.RNN(D, H, K, rng=2)
    m.cell.W.data *= scale
    x, y = rng.integers(0, D, (B, T)), rng.integers(0, K, (B, T))
    got, exported = [], []
    for fused in (False, True):
        m.fused = fused
        tg.new_graph()                                     # each run on a tape of its own
        out = m(x)
        terms = [tg.cross_entropy(o, y[:, t]) for t, o in enumerate(out.o)]
        f = tg.flow(terms, out.h, weights=m.cell.W)
        assert [v.label for v in f.variables] == ["rnn/cell/h"]
        got.append(f["rnn/cell/h"])
        exported.append(tg.trace(tg.stack(terms).sum(), flow=f).attrs["flow"])
    step, fus = got
    a, b = (e["variables"][0] for e in exported)       # the same nodes h(t) and L(t) named
    assert a["nodes"] == b["nodes"] and a["loss_nodes"] == b["loss_nodes"]
    assert None not in a["nodes"] + a["loss_nodes"]
    assert np.all(step.F[np.tril_indices(T)] > 0)          # the per-step F is a real lower triangle
    np.testing.assert_allclose(fus.F, step.F, rtol=1e-12, atol=0)
    for k in ("sigma", "sigma_window", "rho", "saturation"):
        a, b = np.asarray(getattr(fus, k)), np.asarray(getattr(step, k))
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=0, equal_nan=True)


def test_grad_norms_of_kept_steps_reach_the_exported_h_of_a_fused_run():
    m = nn.RNN(3, 4, 2, rng=0, fused=True)
    out = m(np.array([[0, 1, 2, 1]]))
    loss = nn.sequence_loss(out.o, np.array([[0, 1, 1, 0]]))
    loss.backward(keep_grads=True)
    hs = [n for n in tg.trace(loss).nodes if n["name"] == "h" and n["kind"] == "op"]
    assert [n["step"] for n in hs] == [1, 2, 3, 4] and all(n["grad_norm"] > 0 for n in hs)


def test_the_per_step_context_records_every_step_of_a_fused_module():
    m = nn.RNN(4, 5, 3, rng=0, fused=True)
    x, y = np.array([[0, 1, 2]]), np.array([[0, 1, 2]])
    with nn.per_step():
        inside = recorded(nn.sequence_loss(m(x).o, y))
    assert "elman_scan" not in inside and inside.count("tanh") == 3
    assert "elman_scan" in recorded(nn.sequence_loss(m(x).o, y))      # the switch is restored


@pytest.mark.parametrize("output", ["every", "last"])
def test_kept_grad_of_every_h_of_a_fused_run_is_the_whole_bptt_gradient(output):
    """out.h[t].grad after keep_grads: the per-step recording's grad h(t) (1e-12), which the
    seed's recursion grad h(t) = V^T grad o(t) + W^T diag(1 - h(t+1)^2) grad h(t+1) gives."""
    rng = np.random.default_rng(8)
    m = nn.RNN(3, 4, 2, output=output, rng=3)
    x, y = rng.integers(0, 3, (2, 6)), rng.integers(0, 2, (2, 6))
    got = []
    for fused in (False, True):
        out, _, _ = run(m, x, y, fused)
        got.append([h.grad.copy() for h in out.h])
    assert all(np.abs(g).sum() > 0 for g in got[0])
    for a, b in zip(*got):
        assert rel_err(b, a) < 1e-12
