"""Truncated BPTT: equal to full BPTT without truncation, equal to hand-cut windows with it,
and bounded in memory on long streams."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tinygraph as tg
from tinygraph import nn
from tinygraph.optim import SGD
from tinygraph.tbptt import sequence_step, tbptt

B, T, V, H = 3, 17, 5, 6
RNG = np.random.default_rng(0)
X = RNG.integers(0, V, (B, T))
Y = RNG.integers(0, V, (B, T))


def grads(model):
    return {k: p.grad.copy() for k, p in model.named_parameters()}


def assert_close(a, b, tol=1e-12):
    assert a.keys() == b.keys()
    for k in a:
        assert np.abs(a[k] - b[k]).max() <= tol * max(np.abs(b[k]).max(), 1e-300), k


@pytest.mark.parametrize("k1", [1, 3, 5, 17])
@pytest.mark.parametrize("kind", ["rnn", "stacked", "skip"])
def test_equals_full_bptt_when_k2_covers_the_sequence(k1, kind):
    m = nn.RNN(V, H, V, rng=0) if kind == "rnn" else nn.DeepRNN(V, H, V, kind=kind, rng=0)
    full = nn.sequence_loss(m(X).o, Y, reduction="sum")
    full.backward()
    ref = grads(m)
    m.zero_grad()
    state0 = np.zeros((B, H)) if kind == "rnn" else [np.zeros((B, H))] * m.num_layers
    res = tbptt(sequence_step(m, X, Y, reduction="sum"), state0, T, k1=k1, k2=T + 3)
    assert_close(grads(m), ref)
    assert abs(sum(res.losses) - full.item()) < 1e-10
    assert len(res.windows) == -(-T // k1)


def test_k1_equal_k2_is_carry_the_state_and_detach():
    m = nn.RNN(V, H, V, rng=1)
    k, n = 5, 15                                  # n a multiple of k: no partial last window
    h = np.zeros((B, H))
    for s in range(0, n, k):                      # by hand: chunks with a cut carried state
        out = m(X[:, s:s + k], state=h)
        nn.sequence_loss(out.o, Y[:, s:s + k], reduction="sum").backward()
        h = out.h[-1].data
    ref = grads(m)
    m.zero_grad()
    res = tbptt(sequence_step(m, X[:, :n], Y[:, :n], reduction="sum"), np.zeros((B, H)), n,
                k1=k, k2=k)
    assert_close(grads(m), ref)
    np.testing.assert_allclose(res.state[0], h, atol=1e-14)


def test_overlapping_windows_backpropagate_k2_steps_for_the_last_k1_losses():
    m = nn.RNN(V, H, V, rng=2)
    k1, k2 = 3, 7
    with tg.no_grad():
        states = [np.zeros((B, H))] + [h.data for h in m(X).h]      # h(0..T), fixed weights
    done = 0
    while done < T:                                  # by hand: W&P's windows with fixed weights
        end = min(done + k1, T)
        start = max(0, end - k2)
        out = m(X[:, start:end], state=states[start])
        mask = np.zeros((B, end - start), dtype=bool)
        mask[:, done - start:] = True
        nn.sequence_loss(out.o, Y[:, start:end], mask=mask, reduction="sum").backward()
        done = end
    ref = grads(m)
    m.zero_grad()
    res = tbptt(sequence_step(m, X, Y, reduction="sum"), np.zeros((B, H)), T, k1=k1, k2=k2)
    assert_close(grads(m), ref)
    assert res.windows[:3] == [(1, 1, 3), (1, 4, 6), (3, 7, 9)]


def test_training_on_a_stream_with_an_optimizer_lowers_the_loss():
    text_ids = np.tile(np.arange(V), 60)[None, :]              # a periodic stream 0 1 2 3 4 0 1 ...
    m = nn.RNN(V, 8, V, rng=0)
    opt = SGD(m.parameters(), lr=0.5, momentum=0.9)
    res = tbptt(sequence_step(m, text_ids[:, :-1], text_ids[:, 1:]), np.zeros((1, 8)),
                text_ids.shape[1] - 1, k1=10, k2=10, optimizer=opt, clip=5.0)
    assert np.mean(res.losses[-5:]) < 0.1 * np.mean(res.losses[:3])


def test_bad_arguments_raise():
    m = nn.RNN(V, H, V, rng=0)
    with pytest.raises(ValueError, match=r"1 <= k1 <= k2, got k1=5, k2=3"):
        tbptt(sequence_step(m, X, Y), np.zeros((B, H)), T, k1=5, k2=3)
    with pytest.raises(ValueError, match=r"sequence_step: expected int targets y of shape \(3, 17\)"):
        sequence_step(m, X, Y[:, :4])
    with pytest.raises(TypeError, match="sequence_step: expected an nn.RNN"):
        sequence_step(nn.RNN(V, H, V, output="last"), X, Y)


_MEMORY_SCRIPT = r"""
import json, sys, tracemalloc
import numpy as np
from tinygraph import nn
from tinygraph.optim import SGD
from tinygraph.tbptt import sequence_step, tbptt
T = int(sys.argv[1])
rng = np.random.default_rng(0)
x, y = rng.integers(0, 16, (4, T)), rng.integers(0, 16, (4, T))
m = nn.RNN(16, 32, 16, rng=0)
opt = SGD(m.parameters(), lr=0.01)
step = sequence_step(m, x, y)
tracemalloc.start()
tbptt(step, np.zeros((4, 32)), T, k1=25, k2=50, optimizer=opt)
print(json.dumps(tracemalloc.get_traced_memory()[1]))
"""


def _peak(T: int) -> int:
    import tinygraph
    root = os.path.dirname(os.path.dirname(os.path.abspath(tinygraph.__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, str(T)], env=env, check=True,
                         capture_output=True, text=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_memory_stays_bounded_on_long_streams():
    short, long = _peak(300), _peak(3000)          # 10x the stream, same windows
    assert long < 1.3 * short, (short, long)
