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


def _adam_reference(x0, grads_per_step, lr=0.01, b1=0.9, b2=0.99, eps=1e-8, wd=0.0):
    """PyTorch's Adam (torch/optim/adam.py, single-tensor path), one step count per parameter:
    a step with no gradient (None) leaves the parameter and its count alone."""
    x, m, v, t = x0.copy(), np.zeros_like(x0), np.zeros_like(x0), 0
    for g in grads_per_step:
        if g is None:
            continue
        t += 1
        g = g + wd * x
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        denom = np.sqrt(v) / np.sqrt(1 - b2 ** t) + eps
        x = x - (lr / (1 - b1 ** t)) * m / denom
    return x


def test_adam_counts_steps_per_parameter_as_pytorch():
    rng = np.random.default_rng(20)
    a0, b0 = rng.standard_normal(3), rng.standard_normal(2)
    a, b = tg.Parameter(a0, name="a"), tg.Parameter(b0, name="b")
    opt = Adam([a, b], lr=0.01, betas=(0.9, 0.99), weight_decay=0.01)
    uses_b = [False, False, True, False, True, True]     # b gets no gradient in some steps
    ga, gb = [], []
    for use in uses_b:
        opt.zero_grad()
        loss = (a * a).sum() + ((b * b * b).sum() if use else 0.0)
        ga.append(2 * a.data.copy())
        gb.append(3 * b.data ** 2 if use else None)
        loss.backward()
        opt.step()
    np.testing.assert_allclose(a.data, _adam_reference(a0, ga, wd=0.01), rtol=1e-13)
    np.testing.assert_allclose(b.data, _adam_reference(b0, gb, wd=0.01), rtol=1e-13)
    assert opt.t == [6, 3]
    torch = pytest.importorskip("torch")
    ta = torch.tensor(a0, requires_grad=True)
    tb = torch.tensor(b0, requires_grad=True)
    topt = torch.optim.Adam([ta, tb], lr=0.01, betas=(0.9, 0.99), weight_decay=0.01)
    for use in uses_b:
        topt.zero_grad(set_to_none=True)
        tloss = (ta * ta).sum() + ((tb * tb * tb).sum() if use else 0.0)
        tloss.backward()
        topt.step()
    np.testing.assert_allclose(a.data, ta.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(b.data, tb.detach().numpy(), rtol=1e-12)


def test_sgd_refuses_a_single_tensor_and_a_parameter_listed_twice():
    W = tg.Parameter(np.ones((3, 2)), name="W")
    with pytest.raises(TypeError, match=r"SGD: params must be an iterable.*single Parameter of "
                                        r"shape \(3, 2\).*SGD\(\[p\]"):
        SGD(W, lr=0.1)
    with pytest.raises(TypeError, match="Adam: params must be an iterable"):
        Adam(W)
    with pytest.raises(ValueError, match=r"SGD: parameter 1 \(W, shape \(3, 2\)\) is the same as "
                                         r"parameter 0"):
        SGD([W, W], lr=0.1)


@pytest.mark.parametrize("make, message", [
    (lambda p: SGD([p], lr=0.1, weight_decay=-0.1), "SGD: weight_decay must be >= 0, got -0.1"),
    (lambda p: Adam([p], weight_decay=-1.0), "Adam: weight_decay must be >= 0, got -1.0"),
    (lambda p: Adam([p], eps=-1e-8), "Adam: eps must be >= 0, got -1e-08"),
])
def test_negative_weight_decay_and_eps_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make(tg.Parameter(np.zeros(1), name="W"))
