"""tinygraph.nn benchmarks: the Elman BPTT step through the modules, and every task's training time.

Run with `make bench` (or `python -m bench.bench_nn`; `quick` skips the task table). The
`tinygraph.nn` columns of the speed table (`bench_table`) run `elman_nn` on `rnn_like`. Figures
are times measured in this one run, never asserted.

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


def elman_nn(rnn: nn.RNN, x: np.ndarray, y: np.ndarray, per_step: bool = True) -> tg.Tensor:
    """Forward + BPTT of the Elman RNN through `tinygraph.nn`: the user's code path."""
    rnn.zero_grad()
    loss = nn.sequence_loss(rnn(x).o, y, reduction="sum", per_step=per_step)
    loss.backward()
    return loss


def rnn_like(p: dict, fused: bool = False) -> nn.RNN:
    """An `nn.RNN` holding the weights `p` of `bench_engine.elman_params` (same numbers)."""
    H, D = p["U"].shape
    rnn = nn.RNN(D, H, p["V"].shape[0], fused=fused)
    rnn.load_state_dict({"cell.U": p["U"], "cell.W": p["W"], "cell.b": p["b"], "V": p["V"],
                         "c": p["c"]})
    return rnn


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


def main(quick: bool = False):
    # the Elman speed rows of tinygraph.nn are columns of the size table (bench_table)
    if quick:
        return
    print(f"# tinygraph.nn benchmarks (numpy {np.__version__}, Python {sys.version.split()[0]})")
    task_table()


if __name__ == "__main__":
    main(quick="quick" in sys.argv[1:])
