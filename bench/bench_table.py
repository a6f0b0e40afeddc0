"""The speed table of issue 10: Elman forward + BPTT at four sizes, every column side by side.

Run with `make bench` (or `python -m bench.bench_table`; add `quick` for the tiny and medium
rows with fewer rounds). Each entry is time ÷ the seed's hand-written per-step numpy BPTT
(tests/reference_bptt.py) *in the same round*: the columns take turns within a round, so load
elsewhere on the machine hits them alike (a sample repeats a short call to last >= 50 ms); the table prints the median ratio and the min–max over
the rounds. Nothing here is asserted about speed; every column is first checked to compute the
same loss (and the tinygraph columns the same gradients) as the hand BPTT.

Also here: the min-char-rnn port row (bench/minchar.py), the plain numpy model vs the same model
written with tinygraph ops. Per-op cost and peak memory are in `bench.bench_engine`.
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tinygraph as tg  # noqa: E402,F401
from tinygraph import nn  # noqa: E402
from tests.reference_bptt import elman_bptt, elman_bptt_batched  # noqa: E402
from bench import minchar  # noqa: E402
from bench.bench_engine import elman_params, elman_tinygraph, elman_torch, rounds, torch  # noqa: E402,E501
from bench.bench_nn import elman_nn, rnn_like  # noqa: E402

try:  # optional column
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
except Exception:  # pragma: no cover - depends on the machine
    jax = None

# name -> (B, D, H, T); K = D outputs; rounds in the full run
SIZES = {"tiny": (1, 10, 16, 50), "medium": (32, 64, 128, 100), "large": (64, 256, 512, 100),
         "long": (8, 32, 64, 5000)}
ROUNDS = {"tiny": 11, "medium": 9, "large": 5, "long": 5}
HAND = "hand BPTT"


def ratios(times: dict[str, list[float]], base: str) -> dict[str, list[float]]:
    """Each function's time ÷ `base`'s time in the same round."""
    return {k: [t / b for t, b in zip(v, times[base])] for k, v in times.items()}


def spread(xs: list[float]) -> str:
    """`median (min–max)` of ratios."""
    return f"{statistics.median(xs):.2f} ({min(xs):.2f}–{max(xs):.2f})"


# ------------------------------------------------------------------------------------------------
# the columns that are not tinygraph's own
# ------------------------------------------------------------------------------------------------

def torch_rnn(p: dict):
    """torch.nn.RNN + a Linear readout, loaded with the same weights; returns a step function."""
    H, D = p["U"].shape
    rnn = torch.nn.RNN(D, H, nonlinearity="tanh", batch_first=True).double()
    out = torch.nn.Linear(H, p["V"].shape[0]).double()
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.tensor(p["U"]))
        rnn.weight_hh_l0.copy_(torch.tensor(p["W"]))
        rnn.bias_ih_l0.copy_(torch.tensor(p["b"]))
        rnn.bias_hh_l0.zero_()
        out.weight.copy_(torch.tensor(p["V"]))
        out.bias.copy_(torch.tensor(p["c"]))
    params = list(rnn.parameters()) + list(out.parameters())

    def run(x, y):
        for q in params:
            q.grad = None
        hs, _ = rnn(x)
        o = out(hs)
        loss = torch.nn.functional.cross_entropy(o.reshape(-1, o.shape[-1]), y.reshape(-1),
                                                 reduction="sum")
        loss.backward()
        return loss
    return run


def jax_scan(p: dict):
    """The Elman RNN as one jitted `lax.scan`, forward + gradient; returns a step function."""
    def loss_fn(q, x, y):
        xu = jnp.einsum("btd,hd->tbh", x, q["U"]) + q["b"]

        def cell(h, a):
            h = jnp.tanh(a + h @ q["W"].T)
            return h, h
        _, hs = jax.lax.scan(cell, jnp.zeros((x.shape[0], q["W"].shape[0])), xu)
        o = hs @ q["V"].T + q["c"]
        logp = jax.nn.log_softmax(o, axis=-1)
        return -jnp.take_along_axis(logp, y.T[..., None], axis=-1).sum()
    step = jax.jit(jax.value_and_grad(loss_fn))
    q = {k: jnp.asarray(v) for k, v in p.items()}

    def run(x, y):
        loss, g = step(q, x, y)
        jax.block_until_ready(g)
        return loss
    return run


# ------------------------------------------------------------------------------------------------
# the table
# ------------------------------------------------------------------------------------------------

def size_row(B: int, D: int, H: int, T: int, n: int) -> dict[str, list[float]]:
    """Ratios to hand BPTT of every column at one size, over `n` interleaved rounds."""
    K = D
    rng = np.random.default_rng(0)
    p = elman_params(D, H, K, rng)
    x = rng.standard_normal((B, T, D))
    y = rng.integers(0, K, (B, T))
    args = (p["U"], p["W"], p["V"], p["b"], p["c"], x, y)
    ref = elman_bptt(*args)
    rnn, fused = rnn_like(p, fused=False), rnn_like(p, fused=True)
    fns = {HAND: lambda: elman_bptt(*args),
           "numpy batched (floor)": lambda: elman_bptt_batched(*args),
           "tinygraph plain ops": lambda: elman_tinygraph(p, x, y),
           "tinygraph.nn": lambda: elman_nn(rnn, x, y),
           "tinygraph.nn fused=True": lambda: elman_nn(fused, x, y, False)}
    # like is compared with like: every column computes the hand BPTT's loss
    checks = {"tinygraph plain ops": elman_tinygraph(p, x, y)[0].item(),
              "tinygraph.nn": elman_nn(rnn, x, y).item(),
              "tinygraph.nn fused=True": elman_nn(fused, x, y, False).item()}
    for prm, k in ((rnn.cell.U, "U"), (rnn.cell.W, "W"), (rnn.V, "V"), (rnn.c, "c")):
        np.testing.assert_allclose(prm.grad, ref[k], rtol=1e-8, atol=1e-10)
    if torch is not None:
        xt, yt = torch.tensor(x), torch.tensor(y)
        tr = torch_rnn(p)
        fns["torch eager"] = lambda: elman_torch(p, x, y)
        fns["torch.nn.RNN"] = lambda: tr(xt, yt)
        checks["torch eager"] = elman_torch(p, x, y).item()
        checks["torch.nn.RNN"] = tr(xt, yt).item()
    if jax is not None:
        jr, xj, yj = jax_scan(p), jnp.asarray(x), jnp.asarray(y)
        fns["JAX jit+scan"] = lambda: jr(xj, yj)
        checks["JAX jit+scan"] = float(jr(xj, yj))
    for k, v in checks.items():
        if abs(v - ref["loss"]) > 1e-8 * abs(ref["loss"]):
            raise AssertionError(f"{k}: loss {v} differs from hand BPTT's {ref['loss']}")
    times = rounds(fns, n)
    out = ratios(times, HAND)
    out[HAND] = [t * 1e3 for t in times[HAND]]  # the yardstick itself, in ms
    return out


def minchar_row(n: int) -> dict[str, list[float]]:
    """min-char-rnn (B = 1, H = 100, T = 25, vocab 60): the numpy model vs its tinygraph port."""
    a = minchar.init(vocab=60, hidden=100, T=25)
    l1, g1, _ = minchar.numpy_loss_and_grads(*a)
    l2, g2, _ = minchar.tinygraph_loss_and_grads(*a)
    assert abs(l1 - l2) < 1e-12 * abs(l1)
    for k in minchar.NAMES:
        np.testing.assert_allclose(g2[k], g1[k], rtol=1e-10, atol=1e-14)
    times = rounds({"numpy": lambda: minchar.numpy_loss_and_grads(*a),
                    "tinygraph ops": lambda: minchar.tinygraph_loss_and_grads(*a)}, n)
    out = ratios(times, "numpy")
    out["numpy"] = [t * 1e3 for t in times["numpy"]]
    return out


def main(quick: bool = False) -> dict:
    sizes = ("tiny", "medium") if quick else tuple(SIZES)
    print(f"\n## Elman RNN forward + BPTT, float64, BLAS on one thread: time ÷ hand per-step "
          f"numpy BPTT in the same round, median (min–max) over interleaved rounds"
          f"{' [quick]' if quick else ''}")
    rows = {}
    for name in sizes:
        B, D, H, T = SIZES[name]
        n = max(3, ROUNDS[name] // 3) if quick else ROUNDS[name]
        rows[name] = size_row(B, D, H, T, n)
        label = f"{name} B{B} D{D} H{H} T{T}"
        print(f"\n  {label}  (hand BPTT {statistics.median(rows[name][HAND]):.2f} ms, "
              f"{n} rounds)")
        for k, v in rows[name].items():
            if k != HAND:
                print(f"    {k:26s} {spread(v)}")
    if torch is None:
        print("  torch eager, torch.nn.RNN: not installed (pip install torch==2.13.0)")
    if jax is None:
        print("  JAX jit+scan: not installed (column skipped)")
    n = 5 if quick else 11
    mc = minchar_row(n)
    print(f"\n## min-char-rnn port (B = 1, H = 100, T = 25, vocab 60): numpy "
          f"{statistics.median(mc['numpy']):.2f} ms; tinygraph ops ÷ numpy "
          f"{spread(mc['tinygraph ops'])} ({n} rounds)")
    rows["min-char-rnn"] = mc
    return rows


if __name__ == "__main__":
    main(quick="quick" in sys.argv[1:])
