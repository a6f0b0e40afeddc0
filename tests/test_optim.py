"""Optimizers against their update formulas, and gradient clipping."""
from __future__ import annotations

import numpy as np
import pytest

import tinygraph as tg
from tinygraph import nn
from tinygraph.optim import SGD, Adam, clip_grad_norm


def quad(p):   # L = 0.5 * sum(p^2): grad = p
    return (p * p).sum() * 0.5


def test_sgd_with_momentum_follows_its_formula():
    p = tg.Parameter(np.array([1.0, -2.0]), name="W")
    opt = SGD([p], lr=0.1, momentum=0.9)
    ref, v = p.data.copy(), np.zeros(2)
    for _ in range(5):
        opt.zero_grad()
        quad(p).backward()
        g = ref.copy()
        v = 0.9 * v + g
        ref = ref - 0.1 * v
        opt.step()
        np.testing.assert_allclose(p.data, ref, rtol=1e-14)


def test_nesterov_and_weight_decay():
    p = tg.Parameter(np.array([3.0]), name="W")
    opt = SGD([p], lr=0.1, momentum=0.5, nesterov=True, weight_decay=0.1)
    opt.zero_grad()
    quad(p).backward()
    g = 3.0 + 0.1 * 3.0
    opt.step()
    assert p.data[0] == pytest.approx(3.0 - 0.1 * (g + 0.5 * g))


def test_adam_follows_its_formula():
    p = tg.Parameter(np.array([1.0, -3.0, 0.5]), name="W")
    opt = Adam([p], lr=0.01, betas=(0.9, 0.99), eps=1e-8)
    x, m, v = p.data.copy(), np.zeros(3), np.zeros(3)
    for t in range(1, 6):
        opt.zero_grad()
        quad(p).backward()
        g = x.copy()
        m = 0.9 * m + 0.1 * g
        v = 0.99 * v + 0.01 * g * g
        x = x - 0.01 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.99 ** t)) + 1e-8)
        opt.step()
        np.testing.assert_allclose(p.data, x, rtol=1e-13)


def test_optimizers_skip_parameters_without_gradient_and_accept_a_module():
    m = nn.Linear(3, 2, rng=0)
    before = m.b.data.copy()
    opt = Adam(m, lr=0.1)
    opt.zero_grad()
    m.W.grad = np.ones_like(m.W.data)
    opt.step()
    np.testing.assert_array_equal(m.b.data, before)


def test_clip_grad_norm_scales_all_gradients_together():
    a, b = tg.Parameter(np.zeros(2), name="a"), tg.Parameter(np.zeros(1), name="b")
    a.grad, b.grad = np.array([3.0, 0.0]), np.array([4.0])
    total = clip_grad_norm([a, b], 1.0)
    assert total == pytest.approx(5.0)
    np.testing.assert_allclose(np.concatenate([a.grad, b.grad]), [0.6, 0.0, 0.8], rtol=1e-9)
    assert clip_grad_norm([a, b], 10.0) == pytest.approx(1.0, rel=1e-9)
    np.testing.assert_allclose(a.grad, [0.6, 0.0], rtol=1e-9)


def test_clip_passes_non_finite_norms_through_untouched():
    a = tg.Parameter(np.zeros(2), name="a")
    a.grad = np.array([np.inf, 1.0])
    assert clip_grad_norm([a], 1.0) == np.inf
    assert a.grad[1] == 1.0


@pytest.mark.parametrize("make, message", [
    (lambda p: SGD([p], lr=0.0), "learning rate must be positive"),
    (lambda p: SGD([p], lr=0.1, momentum=1.0), r"momentum must lie in \[0, 1\)"),
    (lambda p: SGD([p], lr=0.1, nesterov=True), "nesterov=True needs a momentum"),
    (lambda p: Adam([p], betas=(0.9, 1.0)), r"betas must lie in \[0, 1\)"),
    (lambda p: Adam([], lr=0.1), "empty parameter list"),
    (lambda p: clip_grad_norm([p], 0.0), "max_norm must be positive"),
])
def test_bad_settings_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make(tg.Parameter(np.zeros(1), name="W"))


def test_non_parameters_are_refused():
    with pytest.raises(TypeError, match="parameter 0 is a Tensor that does not require grad"):
        SGD([tg.tensor([1.0])], lr=0.1)
