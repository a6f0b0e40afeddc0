"""tinygraph.nn benchmarks: Elman BPTT through the modules, and the training time of every task.

Run with `make bench` (or `python -m bench.bench_nn`). Figures are times and ratios measured side
by side in this one run, never asserted. The yardstick is the hand-written numpy forward + BPTT
of the seed's formulas (tests/reference_bptt.py); the PyTorch column (eager autograd, per-step
ops, float64) appears when `import torch` works.

BLAS runs single-threaded for every column (set in bench/__init__.py): on a shared 2-core
machine a spinning BLAS thread pool makes timings swing by 3x from run to run.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tinygraph as tg  # noqa: E402
from tinygraph import nn, tasks  # noqa: E402
from tests.reference_bptt import elman_bptt, elman_bptt_batched  # noqa: E402
from bench.bench_engine import _peak, elman_params, elman_torch, interleaved_best, torch  # noqa: E402,E501


def elman_nn(rnn: nn.RNN, x: np.ndarray, y: np.ndarray, per_step: bool = True) -> tg.Tensor:
    """Forward + BPTT of the Elman RNN through `tinygraph.nn`: the user's code path."""
    rnn.zero_grad()
    loss = nn.sequence_loss(rnn(x).o, y, reduction="sum", per_step=per_step)
    loss.backward()
    return loss


SIZES = {"tiny": dict(B=1, D=10, H=16, K=10, T=50, repeat=15),
         "medium": dict(B=32, D=64, H=128, K=64, T=100, repeat=15),
         "long": dict(B=8, D=32, H=64, K=32, T=5000, repeat=5)}


def elman_speed(B=32, D=64, H=128, K=64, T=100, repeat=15, memory=False):
    """nn.RNN fused (the default) and per step (``fused=False``) against the hand BPTT; with
    `memory`, the peak (tracemalloc) of each nn row ÷ the arrays hand BPTT keeps."""
    rng = np.random.default_rng(0)
    p = elman_params(D, H, K, rng)
    x = rng.standard_normal((B, T, D))
    y = rng.integers(0, K, (B, T))
    args = (p["U"], p["W"], p["V"], p["b"], p["c"], x, y)
    rnn = nn.RNN(D, H, K, fused=False)          # every op of every step recorded
    rnn.load_state_dict({"cell.U": p["U"], "cell.W": p["W"], "cell.b": p["b"], "V": p["V"],
                         "c": p["c"]})
    fused = nn.RNN(D, H, K, fused=True)         # one op per recurrence (nn/fused.py)
    fused.load_state_dict(rnn.state_dict())
    ref = elman_bptt(*args)                     # same numbers first: like is compared with like
    loss = elman_nn(rnn, x, y)
    assert abs(loss.item() - ref["loss"]) < 1e-10 * abs(ref["loss"])
    for k, prm in (("U", rnn.cell.U), ("W", rnn.cell.W), ("b", rnn.cell.b), ("V", rnn.V),
                   ("c", rnn.c)):
        np.testing.assert_allclose(prm.grad, ref[k], rtol=1e-9, atol=1e-11)
    assert abs(elman_nn(fused, x, y, False).item() - ref["loss"]) < 1e-10 * abs(ref["loss"])
    fns = {"hand numpy BPTT (seed's formulas)": lambda: elman_bptt(*args),
           "hand numpy, batched projections (floor)": lambda: elman_bptt_batched(*args),
           "tinygraph.nn RNN + sequence_loss": lambda: elman_nn(rnn, x, y),
           "tinygraph.nn, one fused loss (per_step=False)": lambda: elman_nn(rnn, x, y, False),
           "tinygraph.nn RNN(fused=True) + sequence_loss": lambda: elman_nn(fused, x, y),
           "tinygraph.nn RNN fused, fused loss": lambda: elman_nn(fused, x, y, False)}
    if torch is not None:
        fns["torch eager, per-step ops"] = lambda: elman_torch(p, x, y)
    rows = interleaved_best(fns, repeat)
    hand = rows["hand numpy BPTT (seed's formulas)"]
    print(f"\n## Elman BPTT through tinygraph.nn, B={B} D={D} H={H} K={K} T={T}, float64 "
          f"(best of {repeat}, taking turns; ratio to hand BPTT)")
    for k, v in rows.items():
        print(f"  {k:46s} {v * 1e3:8.2f} ms  {v / hand:5.2f}x")
    if torch is None:
        print("  torch eager, per-step ops                      (not installed: column skipped)")
    else:
        nn_t = rows["tinygraph.nn RNN + sequence_loss"]
        print(f"  tinygraph.nn / torch eager: {nn_t / rows['torch eager, per-step ops']:.2f}x")
    if memory:
        kept = T * (B * H + B * K) * 8       # every h(t) and softmax(t): what hand BPTT must keep
        print(f"  peak memory ÷ the arrays hand BPTT keeps ({kept / 2**20:.2f} MiB):")
        for k, f in (("hand numpy BPTT", lambda: elman_bptt(*args)),
                     ("nn per step + sequence_loss", lambda: elman_nn(rnn, x, y)),
                     ("nn fused + sequence_loss", lambda: elman_nn(fused, x, y)),
                     ("nn fused, fused loss", lambda: elman_nn(fused, x, y, False))):
            print(f"    {k:44s} {_peak(f) / kept:5.2f}x")
    return rows


def task_table():
    print("\n## Every task, default settings, seed 0 (training time; held-out metric vs chance)")
    runs = [("dynamical", tasks.train_dynamical, {}), ("elman", tasks.train_elman, {}),
            ("last", tasks.train_last, {}), ("jordan", tasks.train_jordan, {}),
            ("bidirectional", tasks.train_bidirectional, {}), ("seq2seq", tasks.train_seq2seq, {}),
            ("deep stacked", tasks.train_deep, {"kind": "stacked"}),
            ("deep deep_transition", tasks.train_deep, {"kind": "deep_transition"}),
            ("deep skip", tasks.train_deep, {"kind": "skip"}),
            ("recursive", tasks.train_recursive, {})]
    out = {}
    for name, fn, kw in runs:
        t0 = time.perf_counter()
        r = fn(seed=0, **kw)
        total = time.perf_counter() - t0
        out[name] = r
        print(f"  {name:22s} {len(r.history):5d} steps {r.seconds:6.2f} s train ({total:5.2f} s "
              f"with eval)  {r.metric_name} {r.metric:.3f} (chance {r.chance:.3f})")
        if r.extra:
            print("  " + " " * 22 + "  " + ", ".join(f"{k} {v:.3f}" for k, v in r.extra.items()))
    return out


def main():
    print(f"# tinygraph.nn benchmarks (numpy {np.__version__}, Python {sys.version.split()[0]})")
    for size, kw in SIZES.items():
        print(f"\n# size {size}")
        elman_speed(**kw, memory=size == "long")
    task_table()


if __name__ == "__main__":
    main()
