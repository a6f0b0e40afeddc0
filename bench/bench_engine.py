"""Engine benchmarks: per-op overhead, Elman BPTT written with tinygraph ops, peak memory.

Run with `make bench` (or `python -m bench.bench_engine`; `quick` skips the memory rows). The
Elman functions here are columns of the speed table (`bench_table`). Every figure is a ratio or a time
measured side by side in this one run; nothing here is asserted (machines are noisy).
PyTorch columns appear when `import torch` works (`pip install torch==2.13.0`), else they say so.
"""
from __future__ import annotations

import gc
import math
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tinygraph as tg  # noqa: E402
from tests.reference_bptt import elman_bptt  # noqa: E402

try:  # optional reference only
    import torch
    torch.set_num_threads(1)
except Exception:  # pragma: no cover - depends on the machine
    torch = None


def rounds(fns: dict, n: int, min_time: float = 0.05) -> dict[str, list[float]]:
    """Time per call of every function over `n` rounds, the functions taking turns within each
    round, so a burst of load elsewhere on the machine hits every column alike.

    One warm-up call each also sets how many calls one sample times (enough for `min_time`
    seconds): a sample of a millisecond is at the mercy of one scheduler tick on a loaded
    machine. The garbage collector stays on, as users run.
    """
    reps = {}
    for k, fn in fns.items():
        t0 = time.perf_counter()
        fn()
        reps[k] = max(1, math.ceil(min_time / max(time.perf_counter() - t0, 1e-6)))
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(n):
        for k, fn in fns.items():
            r = reps[k]
            t0 = time.perf_counter()
            for _ in range(r):
                fn()
            times[k].append((time.perf_counter() - t0) / r)
    return times


# ------------------------------------------------------------------------------------------------
# 1. per-op overhead
# ------------------------------------------------------------------------------------------------

def per_op(n=20_000):
    a0, b0 = np.random.default_rng(0).random(4), np.random.default_rng(1).random(4)

    def numpy_ops():
        x = a0
        for _ in range(n):
            x = x * b0 + a0

    def tg_ops():
        a = tg.Parameter(a0, name="a")
        b = tg.tensor(b0)
        x = a
        for _ in range(n):
            x = x * b + a
        x.sum().backward()

    def tg_ops_source():
        with tg.recording(source=True):
            tg_ops()

    fns = {"numpy (no autodiff)": numpy_ops, "tinygraph": tg_ops,
           "tinygraph, source lines on": tg_ops_source}
    if torch is not None:
        ta0, tb0 = torch.tensor(a0), torch.tensor(b0)

        def torch_ops():
            a = ta0.clone().requires_grad_(True)
            x = a
            for _ in range(n):
                x = x * tb0 + a
            x.sum().backward()
        fns["torch eager"] = torch_ops
    times = rounds(fns, 9, min_time=0)
    print(f"\n## Per recorded op: forward + record + backward, 4-element float64 arrays "
          f"({2 * n} ops; collector on; median (min–max) of 9 interleaved rounds)")
    rows = {}
    for k, v in times.items():
        us = sorted(t / (2 * n) * 1e6 for t in v)
        rows[k] = us[len(us) // 2]
        print(f"  {k:32s} {rows[k]:6.2f} us/op ({us[0]:.2f}–{us[-1]:.2f})")
    if torch is None:
        print("  torch eager                      (not installed: pip install torch==2.13.0)")
    return rows


# ------------------------------------------------------------------------------------------------
# 2. Elman BPTT with tinygraph ops (timed in bench_table, beside the other columns)
# ------------------------------------------------------------------------------------------------

def elman_params(D, H, K, rng, dtype=np.float64):
    s = 1.0 / np.sqrt(H)
    return {"U": rng.uniform(-s, s, (H, D)).astype(dtype), "W": rng.uniform(-s, s, (H, H)).astype(dtype),
            "V": rng.uniform(-s, s, (K, H)).astype(dtype), "b": np.zeros(H, dtype),
            "c": np.zeros(K, dtype)}


def elman_tinygraph(p, x, y, batched=True):
    """Forward + backward of the seed's Elman RNN, written with tinygraph ops.

    h(t) = tanh(b + W h(t-1) + U x(t)), o(t) = c + V h(t), L = sum of cross-entropies, in the
    row-vector convention. `batched`: project the inputs of all steps with one matmul before the
    loop (faster; keeps one (T, B, H) array more); else U x(t) per step, as in the book.
    """
    B, T, D = x.shape
    U, W, V, b, c = (tg.Parameter(p[k], name=k) for k in "UWVbc")
    UT, WT, VT = U.T, W.T, V.T
    xs = tg.tensor(x.transpose(1, 0, 2))                          # (T, B, D)
    xu = xs @ UT + b if batched else None                         # (T, B, H)
    h = tg.zeros(B, W.shape[0], dtype=x.dtype)
    loss = 0.0
    for t in range(T):
        a = xu[t] + h @ WT if batched else xs[t] @ UT + h @ WT + b
        h = tg.tanh(a)                                            # (B, H)
        o = h @ VT + c                                            # (B, K)
        loss = loss + tg.cross_entropy(o, y[:, t], reduction="sum")
    loss.backward()
    return loss, (U, W, V, b, c)


def elman_torch(p, x, y):
    U, W, V, b, c = (torch.tensor(p[k], requires_grad=True) for k in "UWVbc")
    xt = torch.tensor(x.transpose(1, 0, 2))
    yt = torch.tensor(y)
    xu = xt @ U.T + b
    h = torch.zeros(x.shape[0], W.shape[0], dtype=xt.dtype)
    loss = 0.0
    for t in range(x.shape[1]):
        h = torch.tanh(xu[t] + h @ W.T)
        o = h @ V.T + c
        loss = loss + torch.nn.functional.cross_entropy(o, yt[:, t], reduction="sum")
    loss.backward()
    return loss


# ------------------------------------------------------------------------------------------------
# 3. peak memory at T = 5000 (the speed table's `long` size)
# ------------------------------------------------------------------------------------------------

def _peak(fn):
    gc.collect()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def elman_memory(B=8, D=32, H=64, K=32, T=5000):
    rng = np.random.default_rng(0)
    p = elman_params(D, H, K, rng)
    x = rng.standard_normal((B, T, D))
    y = rng.integers(0, K, (B, T))
    args = (p["U"], p["W"], p["V"], p["b"], p["c"], x, y)
    kept = T * (B * H + B * K) * 8           # every h(t) and softmax(t): what hand BPTT must keep
    rows = {"hand numpy BPTT": _peak(lambda: elman_bptt(*args)),
            "tinygraph ops, batched input projection": _peak(lambda: elman_tinygraph(p, x, y)),
            "tinygraph ops, U x(t) per step": _peak(lambda: elman_tinygraph(p, x, y, False))}
    from bench.bench_nn import elman_nn, rnn_like  # bench_nn builds on this module's helpers
    for label, fused, per_step in (("tinygraph.nn RNN + sequence_loss", False, True),
                                   ("tinygraph.nn RNN(fused=True), fused loss", True, False)):
        rnn = rnn_like(p, fused)
        rows[label] = _peak(lambda: elman_nn(rnn, x, y, per_step))
    dims = (B, D, H, K, T)
    rows["tinygraph ops, U x(t) per step (RSS growth)"] = _peak_rss(
        "elman_tinygraph(p, {x}, {y}, False)", *dims)
    if torch is not None:
        rows["torch eager, per-step ops (RSS growth)"] = _peak_rss("elman_torch(p, {x}, {y})",
                                                                   *dims)
    print(f"\n## Peak memory, Elman B={B} D={D} H={H} K={K} T={T} (tracemalloc; inputs excluded)")
    print(f"  arrays hand BPTT keeps (h(t), softmax(t)): {kept / 2**20:7.2f} MiB")
    for k, v in rows.items():
        print(f"  {k:50s} {v / 2**20:7.2f} MiB  {v / kept:5.2f}x of those arrays")
    if torch is None:
        print("  torch eager                                (not installed)")
    return rows, kept


def _peak_rss(call, B, D, H, K, T):
    """Growth of the peak resident set (Linux VmHWM, reset just before the run) of a process.

    torch's allocator is invisible to tracemalloc, so torch is compared with this measure, and
    tinygraph is measured the same way beside it (it includes allocator slack: an upper bound).
    """
    import subprocess
    prog = f"""
import sys, numpy as np
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
from bench.bench_engine import elman_params, elman_torch, elman_tinygraph
rng = np.random.default_rng(0)
p = elman_params({D}, {H}, {K}, rng)
x = rng.standard_normal(({B}, {T}, {D})); y = rng.integers(0, {K}, ({B}, {T}))
{call.format(x="x[:, :50]", y="y[:, :50]")}          # warm up allocators and caches
def kib(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])
open("/proc/self/clear_refs", "w").write("5")         # reset the peak (VmHWM) to the current RSS
before = kib("VmRSS:")
{call.format(x="x", y="y")}
print((kib("VmHWM:") - before) * 1024)
"""
    out = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True)
    return int(out.stdout.strip()) if out.returncode == 0 else float("nan")


def main(quick: bool = False):
    print(f"# tinygraph engine benchmarks (numpy {np.__version__}, Python "
          f"{sys.version.split()[0]}, collector on)")
    per_op(5_000 if quick else 20_000)
    if not quick:
        elman_memory()


if __name__ == "__main__":
    main(quick="quick" in sys.argv[1:])
