"""detect_anomaly and gradcheck."""
from __future__ import annotations

import numpy as np
import pytest

import tinygraph as tg


def test_anomaly_in_forward_names_op_scope_step_and_line():
    x = tg.tensor([1.0, -1.0], requires_grad=True)
    with tg.detect_anomaly():
        with tg.scope("decoder"), tg.step(7):
            with pytest.raises(tg.AnomalyError) as err:
                tg.log(x * 1.0)
    msg = str(err.value)
    assert "log at decoder step 7" in msg and "1 NaN" in msg and "test_debug.py" in msg


def test_anomaly_in_backward_names_the_op():
    x = tg.tensor([0.0], requires_grad=True)
    with tg.detect_anomaly():
        with tg.scope("cell"), tg.step(2):
            y = tg.pow(x, 0.5)  # forward finite, backward divides by zero
        with pytest.raises(tg.AnomalyError, match="pow at cell step 2.*non-finite"):
            y.sum().backward()


def test_no_anomaly_check_outside_the_context():
    x = tg.tensor([-1.0], requires_grad=True)
    y = tg.log(x)
    assert np.isnan(y.data).all()


def test_gradcheck_reports_the_worst_element_of_a_wrong_gradient():
    from tinygraph.registry import defop, OPS
    from tinygraph.tensor import apply

    if "wrong_square" not in OPS:
        @defop("wrong_square")
        class WrongSquare:
            def forward(a):
                return a * a, (a,)

            def backward(g, saved, need):
                return (g * 3 * saved[0],)  # should be 2 * a
    op = OPS.pop("wrong_square")  # keep the registry clean for the op-table tests
    x = tg.tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    res = tg.gradcheck(lambda t: apply(op, (t,)), [x], raise_exception=False)
    assert not res.ok and res.worst_input == 0 and res.worst_index == (2,)
    with pytest.raises(tg.GradcheckError, match="FAILED"):
        tg.gradcheck(lambda t: apply(op, (t,)), [x])


def test_gradcheck_upcasts_float32_with_a_warning():
    x = tg.tensor(np.array([0.3, 0.7], dtype=np.float32), requires_grad=True)
    with pytest.warns(UserWarning, match="float32 input upcast"):
        res = tg.gradcheck(lambda t: tg.tanh(t), [x])
    assert res.ok


def test_gradcheck_rejects_non_tensors():
    with pytest.raises(TypeError, match="input 0"):
        tg.gradcheck(lambda t: t, [np.ones(2)])


def test_gradcheck_reports_a_gradient_of_the_wrong_shape_instead_of_crashing():
    from tinygraph.registry import OPS, defop
    from tinygraph.tensor import apply

    @defop("_bad_shape_test")
    class BadShape:
        def forward(a):
            return a.T, ()

        def backward(g, saved, need):
            return (g,)  # the transpose forgotten: a (3, 2) gradient for a (2, 3) input

    try:
        x = tg.tensor(np.ones((2, 3)), requires_grad=True)
        res = tg.gradcheck(lambda t: apply(BadShape, (t,)), [x], raise_exception=False)
        assert not res.ok and "shape (3, 2), but the input has shape (2, 3)" in str(res)
        with pytest.raises(tg.GradcheckError, match="shape"):
            tg.gradcheck(lambda t: apply(BadShape, (t,)), [x])
    finally:
        del OPS["_bad_shape_test"]


def test_anomaly_messages_never_say_created_at_none():
    x = tg.tensor([0.0], requires_grad=True)
    y = x ** 0.5          # recorded outside detect_anomaly: no source line was kept
    with tg.detect_anomaly():
        with pytest.raises(tg.AnomalyError) as e:
            y.sum().backward()
    assert "None" not in str(e.value) and "source line not recorded" in str(e.value)
