"""The backward sweep: accumulation (fan-out, diamonds, shared weights), long chains, hooks,
retain_grad / retain_graph, release errors, grad(), detach and per-step contributions."""
from __future__ import annotations

import numpy as np
import pytest

import tinygraph as tg


def test_fan_out_accumulates():
    x = tg.tensor([2.0], requires_grad=True)
    y = x * 3
    (y + y * y + y).sum().backward()  # d/dx (2y + y^2) = 3 * (2 + 2y) = 3 * 14
    np.testing.assert_allclose(x.grad, [42.0])


def test_diamond_accumulates():
    x = tg.tensor([0.5], requires_grad=True)
    a = tg.tanh(x)
    b = tg.exp(x)
    (a * b).sum().backward()
    xv = 0.5
    expected = (1 - np.tanh(xv) ** 2) * np.exp(xv) + np.tanh(xv) * np.exp(xv)
    np.testing.assert_allclose(x.grad, [expected])


def test_same_input_twice_in_one_op():
    x = tg.tensor([3.0], requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, [6.0])


def test_parameter_shared_over_1000_steps_matches_finite_differences():
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 3)) * 0.3
    xs = rng.standard_normal((1000, 3))

    def loss_of(w):
        h = tg.zeros(3)
        total = 0.0
        for t in range(1000):
            h = tg.tanh(w @ h + xs[t])
            total = total + h.sum()
        return total

    w = tg.Parameter(w0, name="W")
    loss_of(w).backward()
    eps = 1e-6
    for idx in [(0, 0), (1, 2), (2, 1)]:
        wp, wm = w0.copy(), w0.copy()
        wp[idx] += eps
        wm[idx] -= eps
        with tg.no_grad():
            num = (loss_of(tg.tensor(wp)).item() - loss_of(tg.tensor(wm)).item()) / (2 * eps)
        assert w.grad[idx] == pytest.approx(num, rel=1e-6, abs=1e-8)


def test_gradients_accumulate_across_backward_calls():
    w = tg.Parameter(np.ones(2), name="w")
    (w * 2).sum().backward()
    (w * 3).sum().backward()
    np.testing.assert_allclose(w.grad, [5.0, 5.0])


def test_100k_step_recurrence_without_recursion_error():
    w = tg.Parameter(np.array([0.5]), name="w")
    h = tg.tensor([1.0])
    for _ in range(100_000):
        h = tg.tanh(h * w + 0.1)
    h.sum().backward()
    assert np.isfinite(w.grad).all() and w.grad[0] != 0.0
    g = tg.trace(h)
    assert len(g.nodes) > 300_000


def test_backward_on_non_scalar_needs_a_gradient():
    x = tg.tensor(np.ones(3), requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match=r"shape \(3,\).*Pass grad="):
        y.backward()
    y.backward(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(x.grad, [2.0, 4.0, 6.0])


def test_second_backward_through_released_graph_raises_and_retain_graph_allows_it():
    x = tg.tensor([1.0], requires_grad=True)
    with tg.scope("rnn"), tg.step(4):
        y = tg.tanh(x) * 2
    y.sum().backward(retain_graph=True)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 2 * 2 * (1 - np.tanh(1.0) ** 2))
    with pytest.raises(RuntimeError, match="released.*retain_graph=True"):
        y.sum().backward()


def test_carrying_undetached_state_into_a_new_graph_raises_a_helpful_error():
    w = tg.Parameter(np.array([0.5]), name="W")
    h = tg.tanh(w * 1.0).named("h")
    (h * 1).sum().backward()
    h2 = tg.tanh(w * h)
    with pytest.raises(RuntimeError, match="detach"):
        h2.sum().backward()


def test_detach_cuts_the_gradient_and_is_recorded():
    w = tg.Parameter(np.array([2.0]), name="w")
    a = w * 3
    b = a.detach()
    out = (a + b * w).sum()
    out.backward()
    np.testing.assert_allclose(w.grad, [3.0 + 6.0])  # b = 6 acts as a constant
    assert "detach" in [n["op"] for n in tg.trace(out).nodes]


def test_retain_grad_and_keep_grads():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    h = (x * 3).retain_grad()
    out = (h * h).sum()
    out.backward(keep_grads=True)
    np.testing.assert_allclose(h.grad, 2 * h.data)
    mid = x * 1.0  # not part of the graph of out
    assert mid.grad is None
    g = tg.trace(out)
    assert all(n["grad_norm"] is not None for n in g.nodes if n["requires_grad"])


def test_hooks_can_read_and_replace_gradients():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(g.copy()))
    h = x * 3
    h.register_hook(lambda g: g * 0.5)
    h.sum().backward()
    np.testing.assert_allclose(x.grad, [1.5, 1.5])
    np.testing.assert_allclose(seen[0], [1.5, 1.5])
    with pytest.raises(TypeError):
        x.register_hook("not callable")


def test_functional_grad_leaves_dot_grad_alone():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = tg.tensor([3.0], requires_grad=True)
    h = x * 2
    out = (h * h).sum() + y.sum()
    gx, gh, gy = tg.grad(out, [x, h, y])
    np.testing.assert_allclose(gx.data, 8 * x.data)
    np.testing.assert_allclose(gh.data, 2 * h.data)
    np.testing.assert_allclose(gy.data, [1.0])
    assert x.grad is None


def test_contributions_per_step_sum_to_the_gradient():
    rng = np.random.default_rng(1)
    W = tg.Parameter(rng.standard_normal((4, 4)) * 0.5, name="W")
    h = tg.tensor(rng.standard_normal(4))
    loss = 0.0
    for t in range(1, 6):
        with tg.step(t):
            h = tg.tanh(W @ h)
            loss = loss + h.sum()
    loss.backward(keep_grads=True)
    parts = tg.contributions(W, loss)
    assert [s for s, _, _ in parts] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(sum(p for _, _, p in parts), W.grad, rtol=1e-12, atol=1e-14)
    assert all(np.abs(p).sum() > 0 for _, _, p in parts)


def test_backward_of_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tg.tensor([1.0]).backward()


def test_slices_of_one_tensor_accumulate_with_its_other_uses():
    rng = np.random.default_rng(2)
    x0 = rng.standard_normal((6, 3))
    x = tg.tensor(x0, requires_grad=True)
    total = (x * x).sum()              # a dense use of x
    for t in range(6):                 # and one slice per "time step"
        total = total + (x[t] * (t + 1)).sum() + tg.split(x, 2)[t // 2].sum()
    total.backward()
    expected = 2 * x0 + np.arange(1, 7)[:, None] + 2.0  # each split piece is used twice
    np.testing.assert_allclose(x.grad, expected)
    assert tg.gradcheck(lambda a: tg.stack([a[t] * t for t in range(6)]) + a, [x]).ok


# ------------------------------------------------------------------------------------------------
# corners that were wrong (issue 7)
# ------------------------------------------------------------------------------------------------

def test_grad_with_a_leaf_among_the_outputs_matches_pytorch():
    x0 = np.array([1.0, -2.0, 0.5])
    x = tg.tensor(x0, requires_grad=True)
    (gx,) = tg.grad([x * x, x], [x], grad_outputs=[np.ones(3), np.ones(3)])
    np.testing.assert_allclose(gx.data, 2 * x0 + 1)
    (gy,) = tg.grad([(x * x).sum(), x], [x], grad_outputs=[None, np.arange(3.0)])
    np.testing.assert_allclose(gy.data, 2 * x0 + np.arange(3.0))  # outputs of different shapes
    torch = pytest.importorskip("torch")
    tx = torch.tensor(x0, requires_grad=True)
    (tg_,) = torch.autograd.grad([(tx * tx).sum(), tx], [tx],
                                 grad_outputs=[None, torch.arange(3.0, dtype=torch.float64)])
    np.testing.assert_allclose(gy.data, tg_.numpy())


def test_grad_honours_what_a_leaf_hook_returns():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    x.register_hook(lambda g: g * 10)
    (gx,) = tg.grad((x * 3).sum(), [x])
    np.testing.assert_allclose(gx.data, [30.0, 30.0])
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad, [30.0, 30.0])


def test_grad_refuses_an_unused_input_unless_allowed():
    x = tg.tensor([1.0], requires_grad=True)
    z = tg.tensor([2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"grad: input 1 \(shape \(1,\)\) was not used.*allow_unused=True"):
        tg.grad((x * 2).sum(), [x, z])
    gx, gz = tg.grad((x * 2).sum(), [x, z], allow_unused=True)
    assert gz is None and gx.data[0] == 2.0


def test_grad_results_and_retained_grads_are_writable_arrays_of_their_own():
    x = tg.tensor(np.ones((2, 3)), requires_grad=True)
    (gx,) = tg.grad(x.sum(), [x])      # sum's backward is a read-only broadcast view
    gx.data[0, 0] = 5.0
    assert gx.data.flags.writeable
    y = tg.tensor(np.ones((2, 3)), requires_grad=True)
    h = (y * 1.0).retain_grad()
    h.sum().backward()
    h.grad[0, 0] = 7.0
    y.grad[1, 1] = 3.0
    assert h.grad.flags.writeable and y.grad[0, 0] == 1.0


def test_two_independent_losses_on_one_tape_backpropagate_in_turn():
    rng = np.random.default_rng(30)
    w = tg.Parameter(rng.standard_normal(3), name="w")
    v = tg.Parameter(rng.standard_normal(3), name="v")
    la = (tg.tanh(w) * 2).sum()
    lb = (v * v).sum()
    lb.backward()
    (la * 2).backward()           # PyTorch runs this: lb's backward did not touch la's graph
    np.testing.assert_allclose(v.grad, 2 * v.data)
    np.testing.assert_allclose(w.grad, 4 * (1 - np.tanh(w.data) ** 2))
    trunk = tg.tanh(w * 1.5)      # two heads on one trunk: the second needs retain_graph
    h1, h2 = (trunk * 2).sum(), (trunk * trunk).sum()
    h1.backward(retain_graph=True)
    h2.backward()
    with pytest.raises(RuntimeError, match="released.*retain_graph=True"):
        (trunk * 3).sum().backward()


def test_optimizer_step_between_forward_and_a_second_backward_raises():
    W = tg.Parameter(np.array([[0.5, -0.3], [0.2, 0.1]]), name="W")
    x = tg.tensor([1.0, 2.0])
    with tg.scope("rnn"), tg.step(3):
        loss = tg.tanh(W @ x).sum()
    loss.backward(retain_graph=True)
    tg.optim.SGD([W], lr=0.1).step()
    with pytest.raises(RuntimeError, match=r"matmul at rnn step 3 saved the value of 'W'.*changed "
                                           r"in place.*version 0 -> 1"):
        loss.backward()
    W.grad = None
    loss2 = tg.tanh(W @ x).sum()   # a fresh forward after the step is fine
    loss2.backward()
    np.testing.assert_allclose(W.grad, np.outer(1 - np.tanh(W.data @ x.data) ** 2, x.data))


def test_in_place_change_of_an_unsaved_leaf_is_not_an_error():
    b = tg.Parameter(np.zeros(2), name="b")
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    loss = (x + b).sum()          # add saves no values
    b.mark_modified()
    loss.backward()
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])


def test_untracked_results_used_twice_as_leaves():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    c = tg.tensor([3.0, 4.0]) * 2          # ops on constants only: not recorded, a leaf later
    with tg.no_grad():
        d = x * 1.0                         # made under no_grad: a leaf later too
    z = (x * c) * c + d * x + d
    z.sum().backward()
    np.testing.assert_allclose(x.grad, c.data ** 2 + d.data)


def test_weight_read_through_its_transpose_accumulates_in_its_own_layout():
    # the book's h(t) = tanh(h(t-1) W^T + x(t)): W.T is made once, read at every step. Its
    # summed gradient stays F-ordered (the layout of W.T), so W receives a C-ordered one;
    # the value is checked against the hand formula sum_t da(t)^T h(t-1)
    rng = np.random.default_rng(12)
    w0, xs = rng.standard_normal((6, 6)) * 0.3, rng.standard_normal((5, 3, 6))
    W = tg.Parameter(w0, name="W")
    WT = W.T
    layouts = {}

    def seen(key):
        def hook(g):
            layouts[key] = (g.flags.f_contiguous, g.flags.c_contiguous)
        return hook
    WT.register_hook(seen("WT"))
    W.register_hook(seen("W"))
    h, hs = tg.zeros(3, 6), [np.zeros((3, 6))]
    for t in range(5):
        h = tg.tanh(h @ WT + xs[t])
        hs.append(h.data)
    h.sum().backward()
    assert layouts == {"WT": (True, False), "W": (False, True)}
    dh, gw = np.ones((3, 6)), np.zeros((6, 6))
    for t in range(5, 0, -1):
        da = dh * (1 - hs[t] ** 2)
        gw += da.T @ hs[t - 1]
        dh = da @ w0
    np.testing.assert_allclose(W.grad, gw, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("add_first", [True, False])
def test_a_gradient_passed_on_as_is_is_never_added_into(add_first):
    # Add's backward returns its incoming gradient g itself; another consumer of the same node
    # sends a fresh array (Mul). Whichever arrives first, g (the seed, and the retained gradient
    # of the add's output) must stay as it was, and the sums must be right
    rng = np.random.default_rng(13)
    x0, k0 = rng.standard_normal(4), rng.standard_normal(4)
    x = tg.Parameter(x0, name="x")
    u = tg.exp(x)
    if add_first:  # the later node is swept first: the add's g arrives at u before Mul's
        m = u * 3.0
        s = u + k0
    else:
        s = u + k0
        m = u * 3.0
    for t in (u, s, m):
        t.retain_grad()
    gs, gm = rng.standard_normal(4), rng.standard_normal(4)
    gs_seen, gm_seen = gs.copy(), gm.copy()
    (s * gs + m * gm).sum().backward()
    np.testing.assert_array_equal(gs, gs_seen)
    np.testing.assert_array_equal(gm, gm_seen)
    np.testing.assert_allclose(s.grad, gs, rtol=0, atol=0)
    np.testing.assert_allclose(m.grad, gm, rtol=0, atol=0)
    np.testing.assert_allclose(u.grad, gs + 3.0 * gm, rtol=1e-15)
    np.testing.assert_allclose(x.grad, (gs + 3.0 * gm) * np.exp(x0), rtol=1e-14)


def test_add_of_a_node_to_itself_sends_g_twice_and_keeps_it():
    # v = u + u: the add's backward hands the same array g to both of its inputs (one node)
    rng = np.random.default_rng(14)
    x0, seed = rng.standard_normal(5), rng.standard_normal(5)
    x = tg.Parameter(x0, name="x")
    u = tg.tanh(x)
    v = u + u
    v.retain_grad()
    seen = seed.copy()
    v.backward(seed)
    np.testing.assert_array_equal(seed, seen)      # the seed was never added into
    np.testing.assert_array_equal(v.grad, seen)
    np.testing.assert_allclose(x.grad, 2 * seen * (1 - np.tanh(x0) ** 2), rtol=1e-14)
