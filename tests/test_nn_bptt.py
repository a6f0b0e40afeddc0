"""BPTT through tinygraph.nn equals the seed's hand-written formulas (tests/reference_bptt.py)."""
from __future__ import annotations

import numpy as np
import pytest

import tinygraph as tg
from tinygraph import nn

from nn_helpers import rel_err
from reference_bptt import elman_bptt, elman_bptt_batched, random_elman

SIZES = [dict(B=3, T=7, D=4, H=5, K=6, seed=0), dict(B=1, T=1, D=2, H=3, K=2, seed=1),
         dict(B=4, T=40, D=3, H=8, K=5, seed=2, scale=0.9)]


def elman_from(p: dict, D: int, H: int, K: int) -> nn.RNN:
    rnn = nn.RNN(D, H, K, rng=0)
    rnn.load_state_dict({"cell.U": p["U"], "cell.W": p["W"], "cell.b": p["b"], "V": p["V"],
                         "c": p["c"]})
    return rnn


def run(size: dict):
    p, x, y = random_elman(**size)
    rnn = elman_from(p, size["D"], size["H"], size["K"])
    out = rnn(x)
    for h in out.h:
        h.retain_grad()
    loss = nn.sequence_loss(out.o, y, reduction="sum")
    loss.backward()
    return rnn, out, loss, elman_bptt(**p, x=x, y=y)


@pytest.mark.parametrize("size", SIZES)
def test_parameter_gradients_equal_the_seed_formulas(size):
    rnn, _, loss, ref = run(size)
    assert abs(loss.item() - ref["loss"]) <= 1e-12 * abs(ref["loss"])
    grads = {"U": rnn.cell.U, "W": rnn.cell.W, "b": rnn.cell.b, "V": rnn.V, "c": rnn.c}
    for k, p in grads.items():
        assert p.grad.shape == ref[k].shape
        assert rel_err(p.grad, ref[k]) < 1e-10, k


@pytest.mark.parametrize("size", SIZES)
def test_every_hidden_state_gradient_equals_the_seed_recursion(size):
    _, out, _, ref = run(size)
    T = size["T"]
    assert len(out.h) == T
    for t in range(1, T + 1):          # grad h(t) = W^T diag(1 - h(t+1)^2) grad h(t+1) + V^T grad o(t)
        assert rel_err(out.h[t - 1].grad, ref["dh"][t]) < 1e-10, t
        np.testing.assert_allclose(out.h[t - 1].data, ref["h"][t], rtol=1e-12, atol=1e-15)


def test_keep_grads_gives_the_same_state_gradients():
    size = SIZES[0]
    p, x, y = random_elman(**size)
    rnn = elman_from(p, size["D"], size["H"], size["K"])
    out = rnn(x)
    nn.sequence_loss(out.o, y, reduction="sum").backward(keep_grads=True)
    ref = elman_bptt(**p, x=x, y=y)
    for t in range(1, size["T"] + 1):
        assert rel_err(out.h[t - 1].grad, ref["dh"][t]) < 1e-10
        assert rel_err(out.o[t - 1].grad, ref["do"][t]) < 1e-10   # grad o(t) = yhat(t) - y(t)


def test_per_step_contributions_are_the_books_copies_and_sum_to_the_gradient():
    size = SIZES[0]
    p, x, y = random_elman(**size)
    rnn = elman_from(p, size["D"], size["H"], size["K"])
    with nn.per_step_copies():                     # each step reads its own copy W(t)
        out = rnn(x)
    loss = nn.sequence_loss(out.o, y, reduction="sum")
    loss.backward(keep_grads=True)
    ref = elman_bptt(**p, x=x, y=y)
    per = nn.step_grads(rnn.cell.W, loss)
    assert sorted(per) == list(range(1, size["T"] + 1))
    for t, g in per.items():           # grad W(t) = diag(1 - h(t)^2) grad h(t) h(t-1)^T
        assert rel_err(g, ref["dW_t"][t]) < 1e-10
    np.testing.assert_allclose(sum(per.values()), rnn.cell.W.grad, rtol=1e-12, atol=1e-14)
    for param in (rnn.cell.U, rnn.cell.b, rnn.V, rnn.c):
        per = nn.step_grads(param, loss)
        assert sorted(per) == list(range(1, size["T"] + 1))
        np.testing.assert_allclose(sum(per.values()), param.grad, rtol=1e-12, atol=1e-14)


def test_by_default_a_loop_reads_each_shared_weight_once_with_the_same_gradients():
    size = SIZES[0]
    p, x, y = random_elman(**size)
    rnn = elman_from(p, size["D"], size["H"], size["K"])
    loss = nn.sequence_loss(rnn(x).o, y, reduction="sum")
    loss.backward(keep_grads=True)
    per = nn.step_grads(rnn.cell.W, loss)
    assert list(per) == [None]
    np.testing.assert_array_equal(per[None], rnn.cell.W.grad)
    fast = {k: q.grad.copy() for k, q in rnn.named_parameters()}
    rnn.zero_grad()
    with nn.per_step_copies():
        loss = nn.sequence_loss(rnn(x).o, y, reduction="sum")
    loss.backward()
    for k, q in rnn.named_parameters():
        np.testing.assert_allclose(q.grad, fast[k], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("masked", [False, True])
def test_fused_sequence_loss_equals_the_per_step_one(masked):
    p, x, y = random_elman(B=3, T=6, D=4, H=5, K=6, seed=7)
    rnn = elman_from(p, 4, 5, 6)
    mask = (np.arange(6)[None] < np.array([[6], [2], [4]])) if masked else None
    got = []
    for per_step in (True, False):
        rnn.zero_grad()
        loss = nn.sequence_loss(rnn(x).o, y, mask=mask, per_step=per_step)
        loss.backward()
        got.append((loss.item(), {k: q.grad.copy() for k, q in rnn.named_parameters()}))
    assert got[0][0] == pytest.approx(got[1][0], rel=1e-13)
    for k in got[0][1]:
        np.testing.assert_allclose(got[1][1][k], got[0][1][k], rtol=1e-12, atol=1e-15)


def test_batched_reference_agrees_with_the_per_step_one():
    p, x, y = random_elman(B=5, T=30, D=4, H=6, K=3, seed=3)
    a, b = elman_bptt(**p, x=x, y=y), elman_bptt_batched(**p, x=x, y=y)
    for k in "UWVbc":
        assert rel_err(b[k], a[k]) < 1e-12


def test_reference_matches_central_differences():
    p, x, y = random_elman(B=2, T=5, D=3, H=4, K=3, seed=4)
    from reference_bptt import elman_forward
    ref = elman_bptt(**p, x=x, y=y)
    eps = 1e-6
    for k in "UWVbc":
        num = np.zeros_like(p[k])
        for idx in np.ndindex(*p[k].shape):
            old = p[k][idx]
            p[k][idx] = old + eps
            lp = elman_forward(**p, x=x, y=y)[0]
            p[k][idx] = old - eps
            lm = elman_forward(**p, x=x, y=y)[0]
            p[k][idx] = old
            num[idx] = (lp - lm) / (2 * eps)
        assert rel_err(ref[k], num) < 1e-6, k


def test_int_ids_equal_one_hot_inputs():
    rng = np.random.default_rng(5)
    ids = rng.integers(0, 6, size=(3, 8))
    y = rng.integers(0, 4, size=(3, 8))
    rnn = nn.RNN(6, 5, 4, rng=1)
    a = nn.sequence_loss(rnn(ids).o, y)
    a.backward()
    ga = rnn.cell.U.grad.copy()
    rnn.zero_grad()
    b = nn.sequence_loss(rnn(np.eye(6)[ids]).o, y)
    b.backward()
    assert abs(a.item() - b.item()) < 1e-12
    np.testing.assert_allclose(ga, rnn.cell.U.grad, atol=1e-13)


@pytest.mark.parametrize("masked", [False, True])
def test_loss_through_yhat_equals_the_seed_formulas(masked):
    # L(t) = -log yhat(t)[y(t)] with yhat(t) = softmax(o(t)) recorded, as eq. 10.8-10.11 write it
    size = dict(B=3, T=6, D=4, H=5, K=6, seed=7)
    p, x, y = random_elman(**size)
    rnn = elman_from(p, 4, 5, 6)
    mask = (np.arange(6)[None] < np.array([[6], [2], [4]])) if masked else None
    loss = nn.sequence_loss(rnn(x).o, y, mask=mask, reduction="sum", yhat=True)
    loss.backward()
    g = tg.trace(loss)
    yhats = [n for n in g.nodes if n["name"] == "yhat"]
    assert [n["step"] for n in yhats] == list(range(1, 7)) and yhats[0]["op"] == "softmax"
    ys = [n for n in g.nodes if n["name"] == "y"]       # the targets y(t) are nodes of the graph
    assert [n["step"] for n in ys] == list(range(1, 7)) and ys[0]["kind"] == "input"
    if not masked:
        ref = elman_bptt(**p, x=x, y=y)
        assert abs(loss.item() - ref["loss"]) <= 1e-12 * abs(ref["loss"])
        for k, q in {"U": rnn.cell.U, "W": rnn.cell.W, "b": rnn.cell.b, "V": rnn.V,
                     "c": rnn.c}.items():
            assert rel_err(q.grad, ref[k]) < 1e-10, k
    else:
        fused = elman_from(p, 4, 5, 6)
        nn.sequence_loss(fused(x).o, y, mask=mask, reduction="sum").backward()
        for (k, q), (_, f) in zip(rnn.named_parameters(), fused.named_parameters()):
            np.testing.assert_allclose(q.grad, f.grad, rtol=1e-10, atol=1e-13)
    with pytest.raises(ValueError, match="yhat=True.*per_step=True"):
        nn.sequence_loss(rnn(x).o, y, per_step=False, yhat=True)
