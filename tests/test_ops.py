"""Every op in the registry against central differences, float32 end to end, and the Python
operators. Parametrised over `tg.OPS` itself: a new op is checked without being listed here."""
from __future__ import annotations

import numpy as np
import pytest

import tinygraph as tg
from tinygraph.tensor import apply

CASES = [(name, k) for name, op in sorted(tg.OPS.items()) for k in range(len(op.examples))]


def _inputs(arrays, dtype=np.float64):
    return [tg.tensor(np.asarray(a, dtype=dtype) if np.asarray(a).dtype.kind == "f" else a,
                      requires_grad=np.asarray(a).dtype.kind == "f") for a in arrays]


def test_every_differentiable_op_has_examples():
    missing = [n for n, op in tg.OPS.items() if op.differentiable and not op.examples]
    assert missing == [], f"ops without gradcheck examples: {missing}"


@pytest.mark.parametrize("name,k", CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_op_gradcheck(name, k):
    op = tg.OPS[name]
    arrays, static = op.examples[k]
    xs = _inputs(arrays)
    res = tg.gradcheck(lambda *ts: apply(op, ts, **static), xs)
    assert res.ok and res.max_abs_err < 1e-6


@pytest.mark.parametrize("name,k", CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_op_float32_stays_float32(name, k):
    op = tg.OPS[name]
    arrays, static = op.examples[k]
    xs = _inputs(arrays, np.float32)
    out = apply(op, xs, **static)
    if out.dtype.kind == "f" and not op.casts:  # a cast's output dtype is its argument
        assert out.dtype == np.float32
    if op.differentiable:
        (out * 1.0).sum().backward()
        for x in xs:
            if x.requires_grad:
                assert x.grad is not None and x.grad.dtype == np.float32, name


def test_python_operators_with_scalars_and_arrays_on_both_sides():
    a = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    arr = np.array([2.0, 2.0, 2.0])
    out = (2 + a) * 3 - 1 / a + arr * a - a / 2 + (-a) ** 2 + a @ arr + arr @ a - (5 - a)
    out.sum().backward()
    x = np.array([1.0, 2.0, 3.0])
    # d/dx of each term; the two inner products are scalars broadcast over 3 elements
    expected = 3 + 1 / x**2 + 2 - 0.5 + 2 * x + 3 * 2 + 3 * 2 + 1
    np.testing.assert_allclose(a.grad, expected)


def test_scalar_constants_keep_float32():
    a = tg.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    out = (a * 2.5 + 1) / 3.0 - 0.5
    assert out.dtype == np.float32
    out.sum().backward()
    assert a.grad.dtype == np.float32


def test_split_pieces_cover_the_input_and_route_gradients():
    x = tg.tensor(np.arange(10.0), requires_grad=True)
    parts = tg.split(x, 4)
    assert [p.shape for p in parts] == [(4,), (4,), (2,)]
    (parts[0] * 1 + 0).sum().backward()
    np.testing.assert_array_equal(x.grad, [1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="split.*sum to 5"):
        tg.split(x, [2, 3])


def test_getitem_with_repeated_integer_indices_scatter_adds():
    x = tg.tensor(np.arange(4.0), requires_grad=True)
    x[np.array([1, 1, 3])].sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 2, 0, 1])


def test_cross_entropy_value_matches_log_softmax():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((5, 7))
    y = rng.integers(0, 7, 5)
    ce = tg.cross_entropy(tg.tensor(logits), y).item()
    ls = tg.log_softmax(tg.tensor(logits)).data
    assert ce == pytest.approx(-ls[np.arange(5), y].mean(), rel=1e-12)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = tg.tensor(np.array([[1000.0, 0.0, -1000.0]]), requires_grad=True)
    loss = tg.cross_entropy(logits, np.array([0]))
    loss.backward()
    assert np.isfinite(loss.item()) and loss.item() == pytest.approx(0.0)
    assert np.all(np.isfinite(logits.grad))


def test_recorded_ops_without_gradient():
    o = tg.tensor(np.array([[0.1, 2.0, 0.3]]), requires_grad=True)
    ids = tg.argmax(o)
    oh = tg.one_hot(ids, 3)
    assert ids.op == "argmax" and oh.op == "one_hot" and not oh.requires_grad
    np.testing.assert_array_equal(oh.data, [[0, 1, 0]])
    d = o.detach() * 1.0
    assert not d.requires_grad


def test_max_ties_share_the_gradient():
    x = tg.tensor(np.array([3.0, 1.0, 3.0]), requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad, [0.5, 0.0, 0.5])


def test_number_to_the_power_of_a_tensor():
    x = tg.tensor([0.5, 2.0], requires_grad=True)
    y = 2 ** x
    np.testing.assert_allclose(y.data, 2 ** x.data)
    assert tg.gradcheck(lambda t: 3.0 ** t, [x]).ok
    with pytest.raises(TypeError, match="pow at top level: number \\*\\* Tensor needs a positive"):
        (-2) ** x


def test_float32_gradients_agree_with_float64():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    grads = {}
    for dt in (np.float32, np.float64):
        x = tg.tensor(a.astype(dt), requires_grad=True)
        w = tg.tensor(b.astype(dt), requires_grad=True)
        loss = tg.cross_entropy(tg.tanh(x @ w), np.array([0, 1, 1]))
        loss.backward()
        grads[dt] = (x.grad, w.grad)
    for g32, g64 in zip(grads[np.float32], grads[np.float64]):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-6)
