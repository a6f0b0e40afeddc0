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


# ------------------------------------------------------------------------------------------------
# corners that were wrong (issue 7), each against finite differences or PyTorch
# ------------------------------------------------------------------------------------------------

def test_transpose_with_negative_axes_has_the_right_gradient():
    rng = np.random.default_rng(10)
    x = tg.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    y = tg.transpose(x, (-1, 0, 1))
    assert y.shape == (4, 2, 3)
    w = rng.standard_normal(y.shape)
    (y * w).sum().backward()
    np.testing.assert_array_equal(x.grad, np.transpose(w, (1, 2, 0)))
    assert tg.gradcheck(lambda t: tg.transpose(t, (-2, -1, 0)), [x]).ok


def test_pow_zero_has_zero_gradient_also_at_zero():
    x = tg.tensor([0.0, 1.5, -2.0], requires_grad=True)
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0])
    torch = pytest.importorskip("torch")
    tx = torch.tensor([0.0, 1.5, -2.0], dtype=torch.float64, requires_grad=True)
    (tx ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad, tx.grad.numpy())


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "exp", "softmax", "log_softmax", "sqrt",
                                  "log1p"])
def test_float_ops_on_integer_tensors_promote_to_float64(name):
    fn = getattr(tg, name)
    ints = np.array([1, 2, 3])
    out = fn(tg.tensor(ints))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.data, fn(tg.tensor(ints.astype(np.float64))).data)


def test_sigmoid_and_losses_of_integer_predictions_are_not_truncated():
    s = tg.sigmoid(tg.tensor([1, 2, -3]))
    np.testing.assert_allclose(s.data, 1 / (1 + np.exp(-np.array([1.0, 2.0, -3.0]))))
    ce = tg.cross_entropy(tg.tensor([[1, 2, 0]]), [1])
    assert ce.dtype == np.float64
    assert ce.item() == pytest.approx(np.log(np.exp([1, 2, 0]).sum()) - 2)
    mse = tg.mse_loss(tg.tensor([1, 2]), tg.tensor([2, 4]))
    assert mse.dtype == np.float64 and mse.item() == pytest.approx(2.5)


def test_comparisons_are_elementwise_bool_tensors_without_gradient():
    t = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for res, expected in [(t == 2, [False, True, False]), (t != 2, [True, False, True]),
                          (t > 2, [False, False, True]), (t <= 2, [True, True, False]),
                          (t == tg.tensor([1.0, 0.0, 3.0]), [True, False, True])]:
        assert isinstance(res, tg.Tensor) and res.dtype == np.bool_
        assert not res.requires_grad and res.is_leaf
        np.testing.assert_array_equal(res.data, expected)
    picked = tg.where(t == 2, t * 10, t)
    np.testing.assert_array_equal(picked.data, [1.0, 20.0, 3.0])
    picked.sum().backward()
    np.testing.assert_array_equal(t.grad, [1.0, 10.0, 1.0])
    u = tg.tensor([1.0, 2.0, 3.0])
    assert len({t, u, t}) == 2 and {t: 1}[t] == 1  # hashable by identity


def test_scalar_keeps_the_tensor_dtype_and_tensors_promote():
    a32 = tg.tensor(np.ones(3, np.float32), requires_grad=True)
    assert (a32 * 2.5).dtype == np.float32 and (np.float64(2.0) * a32).dtype == np.float32
    b64 = tg.tensor(np.full(3, 2.0), requires_grad=True)
    out = a32 * b64 + np.arange(3.0)                  # float32 with float64: float64
    assert out.dtype == np.float64
    out.sum().backward()
    assert a32.grad.dtype == np.float32 and b64.grad.dtype == np.float64
    np.testing.assert_array_equal(a32.grad, [2.0, 2.0, 2.0])
    assert (tg.tensor([1, 2]) * 0.5).dtype == np.float64  # int with a float scalar: float
    assert (tg.tensor([1, 2]) * 2).dtype.kind == "i"
    torch = pytest.importorskip("torch")
    assert (torch.ones(3) * 2.5).dtype == torch.float32
    assert (torch.ones(3) * torch.ones(3, dtype=torch.float64)).dtype == torch.float64


def test_float32_leaf_in_a_mixed_graph_gets_a_float32_gradient():
    rng = np.random.default_rng(11)
    w32 = tg.Parameter(rng.standard_normal((3, 3)).astype(np.float32), name="W")
    x64 = tg.tensor(rng.standard_normal(3), requires_grad=True)
    h = tg.tanh(w32 @ x64).retain_grad()
    h.sum().backward()
    assert w32.grad.dtype == np.float32 and x64.grad.dtype == np.float64
    assert h.grad.dtype == h.dtype
    expected = np.outer(1 - np.tanh(w32.data.astype(np.float64) @ x64.data) ** 2, x64.data)
    np.testing.assert_allclose(w32.grad, expected, rtol=1e-6)


def test_casts_record_and_send_the_gradient_back_in_the_input_dtype():
    x = tg.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    d = x.double()
    assert d.dtype == np.float64 and d.op == "astype" and x.float().dtype == np.float32
    (d * d).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])
    ids = x.astype(np.int64)
    assert ids.dtype == np.int64 and not ids.requires_grad
    with pytest.raises(TypeError, match="astype.*complex"):
        x.astype(np.complex128)


def test_unsqueeze_and_squeeze_as_pytorch():
    x = tg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert x.unsqueeze(0).shape == (1, 2, 3) and tg.unsqueeze(x, -1).shape == (2, 3, 1)
    y = x.unsqueeze(1)
    assert y.squeeze().shape == (2, 3) and y.squeeze(1).shape == (2, 3)
    assert y.squeeze(0).shape == (2, 1, 3)  # an axis of size != 1 is left, as torch does
    y.squeeze(1).sum().backward()
    np.testing.assert_array_equal(x.grad, np.ones((2, 3)))


_TORCH_UNARY = {"abs": "abs", "sqrt": "sqrt", "log1p": "log1p"}


@pytest.mark.parametrize("name", ["abs", "sqrt", "log1p", "clamp", "maximum", "minimum", "min"])
def test_new_ops_match_pytorch_values_and_gradients(name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    a0 = rng.uniform(0.1, 2.0, (3, 4)) * rng.choice([-1, 1], (3, 4))
    b0 = rng.standard_normal((3, 4))
    if name in ("sqrt", "log1p"):
        a0 = np.abs(a0)
    b0[0, 0] = a0[0, 0]  # a tie: both sides share the gradient
    a, b = tg.tensor(a0, requires_grad=True), tg.tensor(b0, requires_grad=True)
    ta = torch.tensor(a0, requires_grad=True)
    tb = torch.tensor(b0, requires_grad=True)
    ours = {"clamp": lambda: tg.clamp(a, -0.5, 0.7), "maximum": lambda: tg.maximum(a, b),
            "minimum": lambda: tg.minimum(a, b), "min": lambda: a.min(axis=1)}
    theirs = {"clamp": lambda: torch.clamp(ta, -0.5, 0.7), "maximum": lambda: torch.maximum(ta, tb),
              "minimum": lambda: torch.minimum(ta, tb), "min": lambda: torch.amin(ta, dim=1)}
    out = ours.get(name, lambda: getattr(tg, name)(a))()
    tout = theirs.get(name, lambda: getattr(torch, _TORCH_UNARY.get(name, name))(ta))()
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-12)
    w = rng.standard_normal(out.shape)
    (out * w).sum().backward()
    (tout * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(a.grad, ta.grad.numpy(), rtol=1e-12)
    if name in ("maximum", "minimum"):
        np.testing.assert_allclose(b.grad, tb.grad.numpy(), rtol=1e-12)


def test_cross_entropy_ignore_index_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(13)
    z0 = rng.standard_normal((5, 4))
    y = np.array([1, -100, 3, 0, -100])
    for red in ("mean", "sum", "none"):
        z = tg.tensor(z0, requires_grad=True)
        out = tg.cross_entropy(z, y, reduction=red)
        tz = torch.tensor(z0, requires_grad=True)
        tout = torch.nn.functional.cross_entropy(tz, torch.tensor(y), reduction=red)
        np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-12)
        w = rng.standard_normal(out.shape)
        (out * w).sum().backward()
        (tout * torch.tensor(w)).sum().backward()
        np.testing.assert_allclose(z.grad, tz.grad.numpy(), rtol=1e-12, atol=1e-15)
    z = tg.tensor(z0, requires_grad=True)
    custom = tg.cross_entropy(z, np.array([1, 2, 3, 0, 2]), ignore_index=2)
    assert custom.item() == pytest.approx(tg.cross_entropy(z[np.array([0, 2, 3])],
                                                           [1, 3, 0]).item(), rel=1e-12)
    with pytest.raises(ValueError, match="target -1 is out of range.*ignore_index=-100"):
        tg.cross_entropy(z, np.array([1, -1, 3, 0, 2]))


def test_bad_operands_raise_naming_the_op():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"pow at top level: the exponent must be a real number.*str '2'"):
        x ** "2"
    with pytest.raises(ValueError, match=r"split at top level: sections must be non-negative.*\[3, -1\]"):
        tg.split(x, [3, -1])
    with pytest.raises(ValueError, match=r"embedding at top level.*table must be 2-D \(V, D\), got shape \(5,\)"):
        tg.embedding(tg.tensor(np.arange(5.0), requires_grad=True), [1, 2])
    with pytest.raises(ValueError, match="clamp at top level: at least one of min and max"):
        tg.clamp(x)


# ------------------------------------------------------------------------------------------------
# the op table is the one list: functions, __all__, README and CONTRACT agree with it
# ------------------------------------------------------------------------------------------------

def test_every_op_has_a_public_function_of_its_name():
    for name, op in tg.OPS.items():
        if not op.public:  # recorded by an nn module (elman_scan), not called by users
            assert name not in tg.__all__, name
            continue
        fn = getattr(tg, name, None)
        assert name in tg.__all__ and callable(fn) and fn.__name__ == name, name


def _code_words(text: str) -> set:
    import re
    words = set()
    for span in re.findall(r"`([^`]+)`", text):
        words.update(w for w in span.split() if re.fullmatch(r"[a-z_0-9]+", w))
    return words


def test_readme_op_table_lists_exactly_the_op_table():
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("\n## Ops\n", 1)[1].split("\n\nPython operators", 1)[0]
    rows = [line.split("|")[2] for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| group")]
    listed = _code_words(" ".join(rows))
    assert listed == set(tg.OPS), (f"README lists {sorted(listed - set(tg.OPS))} that are not "
                                   f"ops and misses {sorted(set(tg.OPS) - listed)}")


def test_contract_op_list_is_exactly_the_op_table():
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "docs" / "CONTRACT.md").read_text()
    block = text.split("Ops: functions in `tg.`", 1)[1].split("\nPython operators", 1)[0]
    listed = _code_words(block)
    assert listed == set(tg.OPS), (f"CONTRACT.md lists {sorted(listed - set(tg.OPS))} that are "
                                   f"not ops and misses {sorted(set(tg.OPS) - listed)}")


@pytest.mark.parametrize("a_shape", [(5, 4), (3, 5, 4)])
def test_matmul_gradients_come_in_each_operands_layout(a_shape):
    # ``h @ W.T``: W.T is an F-ordered view; its gradient must be F-ordered too (so W's is
    # C-ordered and the per-step adds into it are contiguous), with the values of a.T @ g
    rng = np.random.default_rng(11)
    a, w, g = rng.standard_normal(a_shape), rng.standard_normal((3, 4)), None
    g = rng.standard_normal(a_shape[:-1] + (3,))
    wt = w.T
    ga, gb = tg.OPS["matmul"].backward(g, (a, wt), (True, True))
    assert gb.flags.f_contiguous and not gb.flags.c_contiguous
    a2, g2 = a.reshape(-1, 4), g.reshape(-1, 3)
    np.testing.assert_allclose(gb, a2.T @ g2, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(ga, g @ w, rtol=1e-13, atol=1e-13)
    # an F-ordered left operand gets an F-ordered gradient as well (2-D case)
    if len(a_shape) == 2:
        af = np.asfortranarray(a)
        ga2, gb2 = tg.OPS["matmul"].backward(g, (af, np.ascontiguousarray(wt)), (True, True))
        assert ga2.flags.f_contiguous and not ga2.flags.c_contiguous
        np.testing.assert_allclose(ga2, g @ w, rtol=1e-13, atol=1e-13)
        assert gb2.flags.c_contiguous


FRESH = [(name, k) for name, k in CASES if tg.OPS[name].fresh]


def test_fresh_is_declared_by_the_elementwise_and_matmul_ops():
    # the ops of an Elman step whose backward allocates: the claim must be present to matter
    assert {"mul", "tanh", "matmul", "exp", "sigmoid"} <= {n for n, _ in FRESH}
    assert not tg.OPS["add"].fresh and not tg.OPS["transpose"].fresh  # they pass g on


@pytest.mark.parametrize("name,k", FRESH)
def test_fresh_ops_return_arrays_nobody_else_holds(name, k):
    # `fresh` lets the sweep add into a returned gradient in place: it must share no memory with
    # the incoming gradient, the inputs, the output or anything the op saved
    op = tg.OPS[name]
    xs, static = op.examples[k]
    out, saved = op.forward(*[np.array(x) for x in xs], **static)
    g = np.random.default_rng(k).standard_normal(np.shape(out))
    held = [g, out, *xs] + [s for s in saved if isinstance(s, np.ndarray)]
    for gi in op.backward(g, saved, (True,) * len(xs)):
        if gi is None or isinstance(gi, np.generic):  # a numpy scalar cannot be written into
            continue
        assert isinstance(gi, np.ndarray) and gi.flags.writeable
        for h in held:
            assert not np.shares_memory(gi, h), f"{name} returned a gradient sharing memory"
