"""`tinygraph.nn.module.Module`: the dtype boundary of a call, save / load of exactly the given
path, and the errors of load / load_state_dict / bad parameter dtypes."""
from __future__ import annotations

import numpy as np
import pytest

import tinygraph as tg
from tinygraph import nn


def test_float32_module_casts_float64_inputs_at_its_boundary():
    rng = np.random.default_rng(40)
    x64 = rng.standard_normal((2, 5, 3))
    m32 = nn.RNN(3, 4, 2, rng=0, dtype=np.float32)
    m64 = nn.RNN(3, 4, 2, rng=0, dtype=np.float64)
    out = m32(x64)
    assert all(o.dtype == np.float32 for o in out.o)            # not silently float64
    ref = m64(x64.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(out.o[-1].data, ref.o[-1].data, rtol=1e-5, atol=1e-6)
    xt = tg.tensor(x64, requires_grad=True)                     # a float64 tensor that learns
    lin = nn.Linear(3, 2, rng=0, dtype=np.float32)
    y = lin(xt)
    assert y.dtype == np.float32
    y.sum().backward()
    assert xt.grad.dtype == np.float64 and lin.W.grad.dtype == np.float32
    np.testing.assert_allclose(xt.grad, np.broadcast_to(lin.W.data.sum(axis=0), x64.shape),
                               rtol=1e-6)
    ids = rng.integers(0, 4, (2, 5))                            # integer ids pass unchanged
    emb = nn.Embedding(4, 3, rng=0, dtype=np.float32)
    assert emb(ids).dtype == np.float32


def test_save_writes_exactly_the_given_path_and_load_reads_it(tmp_path):
    a, b = nn.Linear(3, 2, rng=0), nn.Linear(3, 2, rng=1)
    path = tmp_path / "model.bin"
    a.save(path)
    assert path.exists() and not (tmp_path / "model.bin.npz").exists()
    b.load(path)
    np.testing.assert_array_equal(a.W.data, b.W.data)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated", b"not a zip file at all"])
def test_load_of_a_bad_file_names_the_file(tmp_path, content):
    good = tmp_path / "good.npz"
    nn.Linear(3, 2, rng=0).save(good)
    path = tmp_path / "bad.npz"
    path.write_bytes(content if content else b"")
    with pytest.raises(ValueError, match=r"Linear 'linear': load: '.*bad.npz' is not a complete "
                                         r"\.npz file"):
        nn.Linear(3, 2, rng=0).load(path)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(ValueError, match="cut.npz' is not a complete"):
        nn.Linear(3, 2, rng=0).load(cut)
    with pytest.raises(FileNotFoundError):
        nn.Linear(3, 2, rng=0).load(tmp_path / "missing.npz")


@pytest.mark.parametrize("value,message", [
    (None, r"load_state_dict: W expected real numbers of shape \(2, 3\), got None"),
    (np.ones((2, 3), complex), r"load_state_dict: W expected real numbers.*got dtype complex128"),
])
def test_load_state_dict_refuses_complex_and_none(value, message):
    m = nn.Linear(3, 2, rng=0)
    before = m.b.data.copy()
    with pytest.raises(TypeError, match=message):
        m.load_state_dict({"W": value, "b": np.zeros(2)})
    np.testing.assert_array_equal(m.b.data, before)   # nothing written on failure


def test_integer_dtype_for_a_module_is_refused():
    with pytest.raises(TypeError, match=r"RNNCell 'rnncell': parameter U needs a floating dtype.*int64"):
        nn.RNN(3, 4, 2, rng=0, dtype=np.int64)
