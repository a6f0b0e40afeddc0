"""Tensor creation, attributes, recording tags and the bad-input errors of the tensor layer."""
from __future__ import annotations

import numpy as np
import pytest

import tinygraph as tg


def test_creation_defaults_and_dtypes():
    assert tg.tensor([1.0, 2.0]).dtype == np.float64
    assert tg.tensor([1, 2]).dtype.kind == "i"
    assert tg.tensor(np.ones(2, np.float32)).dtype == np.float32
    assert tg.tensor([1, 2], dtype=np.float32).dtype == np.float32
    assert tg.zeros(2, 3).shape == (2, 3) and tg.zeros((2, 3)).data.sum() == 0
    assert tg.ones(4).data.sum() == 4
    assert tg.full((2, 2), 7.0).data.tolist() == [[7.0, 7.0], [7.0, 7.0]]
    a = tg.randn(3, 4, rng=0)
    b = tg.randn((3, 4), rng=np.random.default_rng(0))
    np.testing.assert_array_equal(a.data, b.data)
    u = tg.uniform((100,), -1, 1, rng=3)
    assert u.data.min() >= -1 and u.data.max() < 1
    w = tg.Parameter(np.zeros((2, 2)), name="W")
    assert w.requires_grad and w.name == "W" and w.is_leaf


def test_attributes_and_repr():
    x = tg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True, name="x")
    assert x.ndim == 2 and x.shape == (2, 2) and x.T.shape == (2, 2)
    assert x.numpy() is x.data
    assert tg.tensor([3.5]).item() == 3.5
    y = (x * 2).named("h")
    r = repr(y)
    assert "shape=(2, 2)" in r and "float64" in r and "name='h'" in r and "op='mul'" in r
    assert y.detach().requires_grad is False
    np.testing.assert_array_equal(y.detach().data, y.data)


def test_scope_and_step_tags_nest():
    w = tg.Parameter(np.ones(2), name="w")
    with tg.scope("encoder"):
        with tg.scope("cell"), tg.step(3):
            h = (w * 2).named("h")
    tape = h._tape
    node = tape.node(h._idx)
    assert node.scope == "encoder/cell" and node.step == 3 and node.name == "h"
    with pytest.raises(ValueError, match="scope"):
        with tg.scope("a/b"):
            pass


def test_no_grad_records_nothing():
    w = tg.Parameter(np.ones(2), name="w")
    with tg.no_grad():
        y = tg.tanh(w * 3)
    assert y._tape is None and not y.requires_grad


def test_ops_on_constants_only_are_not_recorded():
    y = tg.tensor([1.0]) * 2
    assert y._tape is None


def test_requires_grad_on_integer_tensor_raises():
    with pytest.raises(TypeError, match="requires_grad=True needs a floating dtype"):
        tg.tensor([1, 2], requires_grad=True)


def test_unsupported_operand_type_raises_naming_the_op():
    x = tg.tensor([1.0], requires_grad=True)
    with pytest.raises(TypeError, match="add at top level: cannot combine a Tensor with str"):
        x + "a"
    with pytest.raises(TypeError, match="mul.*NoneType"):
        x * None
    with pytest.raises(TypeError, match="cannot make a tensor from str"):
        tg.tensor("abc")


def test_shape_errors_name_op_shapes_scope_and_step():
    a = tg.tensor(np.ones((4, 8)), requires_grad=True)
    b = tg.tensor(np.ones((16, 8)))
    with tg.scope("encoder"), tg.scope("cell"), tg.step(3):
        with pytest.raises(ValueError, match=r"matmul at encoder/cell step 3: shapes \(4, 8\) "
                                             r"and \(16, 8\)"):
            a @ b
        with pytest.raises(ValueError, match=r"add at encoder/cell step 3: shapes \(4, 8\) and "
                                             r"\(3,\)"):
            a + np.ones(3)
        with pytest.raises(ValueError, match=r"concat at encoder/cell step 3"):
            tg.concat([a, tg.ones(3, 3)], axis=0)


def test_cross_entropy_bad_targets():
    logits = tg.tensor(np.zeros((2, 3)), requires_grad=True)
    with pytest.raises(TypeError, match="cross_entropy.*integer class ids"):
        tg.cross_entropy(logits, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="cross_entropy.*target 3 is out of range for 3 classes"):
        tg.cross_entropy(logits, np.array([0, 3]))
    with pytest.raises(ValueError, match="cross_entropy.*do not match"):
        tg.cross_entropy(logits, np.array([0, 1, 2]))


def test_embedding_bad_ids():
    w = tg.Parameter(np.zeros((5, 2)), name="E")
    with pytest.raises(ValueError, match=r"embedding.*\[0, 5\)"):
        tg.embedding(w, np.array([1, 5]))


def test_split_axis_out_of_range_names_the_op():
    x = tg.tensor(np.ones((2, 4)), requires_grad=True)
    with tg.scope("enc"), tg.step(2):
        with pytest.raises(ValueError, match=r"split at enc step 2: axis 3 is out of range"):
            tg.split(x, 2, axis=3)


def test_targets_may_be_a_plain_list():
    logits = tg.tensor(np.zeros((3, 4)), requires_grad=True)
    assert tg.cross_entropy(logits, [0, 1, 3]).item() == pytest.approx(np.log(4))


def test_tensor_and_parameter_copy_as_tensor_and_from_numpy_share():
    a = np.array([1.0, 2.0])
    t, p = tg.tensor(a), tg.Parameter(a, name="W")
    s, f = tg.as_tensor(a), tg.from_numpy(a)
    a[0] = 99.0
    assert t.data[0] == 1.0 and p.data[0] == 1.0
    assert s.data[0] == 99.0 and f.data[0] == 99.0
    p.grad = np.ones(2)
    tg.optim.SGD([p], lr=0.5).step()
    assert a[1] == 2.0  # an optimizer step never writes into the caller's array
    a32 = np.ones(2, np.float32)
    assert tg.from_numpy(a32).dtype == np.float32 and tg.as_tensor(a32).data is a32
    assert tg.as_tensor(a, dtype=np.float32).dtype == np.float32


@pytest.mark.parametrize("make,error,message", [
    (lambda: tg.tensor(np.array([1 + 2j])), TypeError, r"tensor: complex values \(dtype complex128\)"),
    (lambda: tg.tensor([1j], requires_grad=True), TypeError, "tensor: complex values"),
    (lambda: tg.Parameter(None), TypeError, "Parameter: got None; expected a number"),
    (lambda: tg.Parameter(np.zeros(2), dtype=np.int64), TypeError,
     "Parameter: dtype must be a floating dtype.*int64"),
    (lambda: tg.tensor(np.array([object()])), TypeError, "tensor: cannot make a tensor from ndarray"),
    (lambda: tg.tensor([[1.0, 2.0], [3.0]]), ValueError,
     "tensor: cannot make an array of numbers from list.*rectangular"),
    (lambda: tg.zeros(2.5), TypeError, r"zeros: shape must be ints or a tuple of ints, got 2.5"),
    (lambda: tg.ones((2, 1.5)), TypeError, r"ones: shape must be ints, got \(2, 1.5\)"),
    (lambda: tg.full((-1, 2), 0.0), ValueError, "full: shape must be non-negative"),
    (lambda: tg.from_numpy([1.0]), TypeError, "from_numpy: expected a numpy array, got list"),
])
def test_bad_data_raises_naming_the_function(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_version_counts_in_place_changes():
    p = tg.Parameter(np.zeros(2), name="W")
    assert p.version == 0
    p.grad = np.ones(2)
    tg.optim.Adam([p]).step()
    assert p.version == 1 and p.mark_modified().version == 2
