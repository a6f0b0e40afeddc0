"""tg.flow (tinygraph/flow.py): per-loss-term flow and Jacobian spectra, against references.

References never use the engine's backward: F is checked against central finite differences
(the state h(t) is perturbed in the forward pass itself) on the seed's Elman RNN, the
bidirectional net, seq2seq and a stacked deep RNN, and against the seed's BPTT recursion
(grad h(t) = W^T diag(1 - h(t+1)^2) grad h(t+1)) in numpy; the spectra against numpy SVDs of
diag(1 - h(t)^2) W.
"""
from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest

import tinygraph as tg
from tinygraph import nn
from tinygraph.tape import STATE
from tinygraph.tensor import Tensor

from nn_helpers import rel_err


@contextlib.contextmanager
def perturbed(name: str, scope_part: str, k: int, delta: np.ndarray):
    """Add `delta` to the k-th recorded state named `name` (scope containing `scope_part`)
    right where the forward pass makes it: every later op reads the perturbed value."""
    orig = Tensor.named
    seen = [0]

    def named(self, nm):
        out = orig(self, nm)
        if nm == name and self._tape is not None and scope_part in STATE.scope:
            if seen[0] == k:
                self.data = self.data + delta
            seen[0] += 1
        return out
    Tensor.named = named
    try:
        yield
    finally:
        Tensor.named = orig


def fd_flow(run, name, scope_part, n_states, shape, eps=1e-6):
    """F[i, k] = ‖∂L_i/∂h_k‖ by central differences; `run()` returns the loss values."""
    m = len(run())
    F = np.zeros((m, n_states))
    for k in range(n_states):
        g = np.zeros((m,) + shape)
        for idx in np.ndindex(*shape):
            d = np.zeros(shape)
            d[idx] = eps
            with perturbed(name, scope_part, k, d):
                up = run()
            with perturbed(name, scope_part, k, -d):
                down = run()
            g[(slice(None),) + idx] = (np.array(up) - np.array(down)) / (2 * eps)
        F[:, k] = np.sqrt((g.reshape(m, -1) ** 2).sum(axis=1))
    return F


def step_terms(o, y):
    """One loss term L(t) per output, tagged with its step (as sequence_loss records them)."""
    terms = []
    for t, ot in enumerate(o, 1):
        with tg.step(t):
            terms.append(tg.cross_entropy(ot, y[:, t - 1], reduction="sum").named("L"))
    return terms


# one builder per architecture: (model, forward -> (loss terms, {label: states}), fd keys)
def elman(rng):
    m = nn.RNN(3, 4, 3, rng=1)
    x, y = rng.standard_normal((2, 5, 3)), rng.integers(0, 3, (2, 5))

    def fwd():
        out = m(x)
        return step_terms(out.o, y), {"h": out.h}
    return fwd, {"h": ("h", "rnn")}, {"h": m.cell.W}


def bidirectional(rng):
    m = nn.BidirectionalRNN(3, 3, 3, rng=2)
    x, y = rng.standard_normal((2, 4, 3)), rng.integers(0, 3, (2, 4))

    def fwd():
        out = m(x)
        return step_terms(out.o, y), {"h": out.h, "g": out.g}
    return fwd, {"h": ("h", "fwd"), "g": ("g", "bwd")}, {"h": m.fwd.W, "g": m.bwd.W}


def seq2seq(rng):
    m = nn.Seq2Seq(4, 4, 3, rng=3)
    src, tgt = rng.integers(0, 4, (2, 4)), rng.integers(0, 4, (2, 4))

    def fwd():
        C, hs = m.encoder(src)
        out = m.decoder(C, tgt[:, :3])
        return step_terms(out.o, tgt[:, 1:]), {"encoder/h": hs, "decoder/h": out.h}
    return (fwd, {"encoder/h": ("h", "encoder"), "decoder/h": ("h", "decoder")},
            {"encoder/h": m.encoder.cell.W, "decoder/h": m.decoder.W})


def deep(rng):
    m = nn.DeepRNN(3, 3, 3, kind="stacked", num_layers=2, rng=4)
    x, y = rng.standard_normal((2, 4, 3)), rng.integers(0, 3, (2, 4))
    box = {}

    def fwd():
        orig = m.step
        layers = []

        def step(x_t, state, wts=None):
            new = orig(x_t, state, wts)
            layers.append(new)
            return new
        m.step = step
        try:
            out = m(x)
        finally:
            del m.step
        box["layers"] = layers
        return step_terms(out.o, y), {"layer1/h": [s[0] for s in layers],
                                      "layer2/h": [s[1] for s in layers]}
    return (fwd, {"layer1/h": ("h", "layer1"), "layer2/h": ("h", "layer2")},
            {"layer1/h": m.layers[0].W, "layer2/h": m.layers[1].W})


ARCHS = {"elman": elman, "bidirectional": bidirectional, "seq2seq": seq2seq, "deep": deep}


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_flow_equals_finite_differences(arch):
    fwd, keys, weights = ARCHS[arch](np.random.default_rng(0))
    terms, states = fwd()
    f = tg.flow(terms, states, weights=weights)
    assert [v.name for v in f.variables] == [k.split("/")[-1] for k in states]

    def run():   # recorded (so the states are told from leaves), never backpropagated
        return [float(L.data) for L in fwd()[0]]
    for label, (name, part) in keys.items():
        v = f[label]
        ref = fd_flow(run, name, part, len(states[label]), states[label][0].shape)
        assert rel_err(v.F, ref) < 1e-8, (label, v.F, ref)
        assert (v.F > 0).any()


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_spectra_equal_the_seeds_jacobian_diag_1_minus_h2_W(arch):
    fwd, _, weights = ARCHS[arch](np.random.default_rng(1))
    terms, states = fwd()
    f = tg.flow(terms, states, weights=weights, window=2)
    for label, seq in states.items():
        v, W = f[label], weights[label].data
        hs = [s.data for s in sorted(seq, key=lambda s: s._idx)]   # recording order
        J = [None] + [np.einsum("bi,ij->bij", 1 - h ** 2, W) for h in hs[1:]]
        sig = [np.linalg.svd(j, compute_uv=False)[:, 0].max() for j in J[1:]]
        assert np.isnan(v.sigma[0])
        np.testing.assert_allclose(v.sigma[1:], sig, rtol=1e-12)
        win = [np.linalg.svd(J[k] @ J[k - 1], compute_uv=False)[:, 0].max()
               for k in range(2, len(J))]
        np.testing.assert_allclose(v.sigma_window[2:], win, rtol=1e-10)
        assert np.isnan(v.sigma_window[:2]).all()
        assert v.rho == pytest.approx(np.abs(np.linalg.eigvals(W)).max())
        np.testing.assert_allclose(v.saturation, [np.mean(np.abs(h) > 0.99) for h in hs])


def test_flow_matches_the_seeds_bptt_recursion_on_the_elman_rnn():
    rng = np.random.default_rng(5)
    m = nn.RNN(4, 6, 5, rng=7)
    x, y = rng.standard_normal((3, 9, 4)), rng.integers(0, 5, (3, 9))
    out = m(x)
    f = tg.flow(step_terms(out.o, y), out.h, weights=m.cell.W)
    W, V, c = m.cell.W.data, m.V.data, m.c.data
    hs = [h.data for h in out.h]
    ref = np.zeros((9, 9))
    for tau in range(9):
        o = hs[tau] @ V.T + c
        p = np.exp(o - o.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        p[np.arange(3), y[:, tau]] -= 1.0                       # grad o(τ) = ŷ(τ) − y(τ)
        dh = p @ V                                              # grad h(τ) = Vᵀ grad o(τ)
        for t in range(tau, -1, -1):
            ref[tau, t] = np.linalg.norm(dh)
            if t:
                dh = ((1 - hs[t] ** 2) * dh) @ W                # Wᵀ diag(1 − h(t)²) grad h(t)
    v = f["h"]
    assert rel_err(v.F, ref) < 1e-12
    assert np.all(np.triu(v.F, 1) == 0)                          # L(τ′) never reaches h(t > τ′)
    assert list(v.steps) == list(range(1, 10)) and list(v.loss_steps) == list(range(1, 10))


def test_flow_leaves_grads_alone_and_backward_still_works():
    rng = np.random.default_rng(2)
    m = nn.RNN(3, 4, 3, rng=0)
    out = m(rng.standard_normal((2, 4, 3)))
    terms = step_terms(out.o, rng.integers(0, 3, (2, 4)))
    total = tg.stack(terms).sum()
    tg.flow(terms, out.h)
    assert m.cell.W.grad is None
    total.backward()
    W1 = m.cell.W.grad.copy()
    m.zero_grad()
    out2 = m(rng.standard_normal((2, 4, 3)))
    assert W1.shape == (4, 4) and out2.h[0].shape == (2, 4)
    assert not any(out.h[0]._tape.hooks.values())               # the Jacobian hooks are gone


def test_flow_is_exported_and_survives_json(tmp_path):
    rng = np.random.default_rng(3)
    m = nn.RNN(3, 4, 3, rng=0)
    out = m(rng.standard_normal((1, 5, 3)))
    terms = step_terms(out.o, rng.integers(0, 3, (1, 5)))
    total = tg.stack(terms).sum().named("L")
    f = tg.flow(terms, out.h, weights=m.cell.W)
    total.backward(keep_grads=True)
    g = tg.trace(total, flow=f)
    g.save(tmp_path / "g.json")
    back = json.loads((tmp_path / "g.json").read_text())["graph"]["flow"]
    (v,) = back["variables"]
    np.testing.assert_allclose(v["F"], f["h"].F)
    assert v["weight"] == "W" and v["window"] == 10 and len(v["sigma"]) == 5
    names = {n["id"]: (n["name"], n["step"]) for n in g.nodes}
    assert [names[i] for i in v["nodes"]] == [("h", t) for t in range(1, 6)]
    assert [names[i] for i in v["loss_nodes"]] == [("L", t) for t in range(1, 6)]


def test_flow_says_what_is_wrong():
    m = nn.RNN(3, 4, 3, rng=0)
    out = m(np.zeros((1, 3, 3)))
    with pytest.raises(ValueError, match="at least one loss term"):
        tg.flow([], out.h)
    with pytest.raises(ValueError, match="scalar"):
        tg.flow([out.o[0]], out.h)
    with pytest.raises(ValueError, match="sequence of Tensors"):
        tg.flow([out.o[0].sum()], out.h[0])
    with pytest.raises(KeyError, match="no variable"):
        tg.flow([out.o[0].sum()], out.h)["g"]
