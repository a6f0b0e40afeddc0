"""viz benchmarks: drawing a 10,000-step Elman RNN (about 130,000 recorded nodes).

Run with `make bench` (or `python -m bench.bench_viz`; `python -m bench.bench_viz trace` runs the
trace rows only). Each stage is timed once, in the order a user meets them: record + backward,
trace + export, then every view rendered to a file through Graphviz. The trace rows time
`tg.trace` and `to_networkx` at 10,000 and 100,000 steps: linear export means the same time per
node at both sizes. The one bound printed (a generous 60 s for the unfolded view, which the issue
asks to take "seconds, not minutes") is reported, not asserted: tests do not depend on machine
speed.
"""
from __future__ import annotations

import functools
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import tinygraph as tg  # noqa: E402
import viz  # noqa: E402
from tinygraph import nn  # noqa: E402

T = 10_000
BOUND = 60.0


def timed(label: str, fn):
    start = time.perf_counter()
    out = fn()
    sec = time.perf_counter() - start
    print(f"  {label:38s} {sec:7.2f} s")
    return out, sec


def elman_loss(T: int):
    """nn.RNN (B = 1, H = 16, 5 classes) + sequence_loss over T steps, after backward."""
    rnn = nn.RNN(5, 16, 5, rng=0)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, (1, T)), rng.integers(0, 5, (1, T))
    loss = nn.sequence_loss(rnn(x).o, y)
    loss.backward(keep_grads=True)
    return loss


def wall_and_cpu(fn):
    """(result, wall seconds, CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def trace_rows(steps=(10_000, 100_000)) -> None:
    print("# trace (export) of nn.RNN + sequence_loss: linear in nodes + edges")
    print("  (wall and CPU seconds: on a shared machine the CPU time is the steadier figure)")
    for T in steps:
        g, wall, cpu = wall_and_cpu(functools.partial(tg.trace, elman_loss(T)))
        n, m = len(g.nodes), len(g.edges)
        _, nx_wall, nx_cpu = wall_and_cpu(g.to_networkx)
        for label, w, c in (("trace", wall, cpu), ("to_networkx", nx_wall, nx_cpu)):
            print(f"  T = {T:>7,}: {label:12s} {w:7.2f} s wall {c:7.2f} s CPU "
                  f"({c / n * 1e6:5.1f} us CPU per node; {n:,} nodes, {m:,} edges)")


def main() -> None:
    if sys.argv[1:] == ["trace"]:
        trace_rows()
        return
    trace_rows()
    print(f"# viz benchmarks: Elman RNN, T = {T:,}, B = 1, H = 16")
    rnn = nn.RNN(5, 16, 5, rng=0)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, (1, T)), rng.integers(0, 5, (1, T))

    def record():
        loss = nn.sequence_loss(rnn(x).o, y)
        loss.backward(keep_grads=True)
        return loss
    loss, _ = timed("forward + backward(keep_grads)", record)
    G, _ = timed("trace + to_networkx", lambda: tg.trace(loss).to_networkx())
    print(f"  ({G.number_of_nodes():,} nodes, {G.number_of_edges():,} edges)")
    with tempfile.TemporaryDirectory() as tmp:
        out = lambda name: os.path.join(tmp, name)  # noqa: E731
        _, unf = timed("unfolded, variable level -> PNG",
                       lambda: viz.render(viz.unfolded(G), out("u.png")))
        timed("unfolded, op level -> SVG",
              lambda: viz.render(viz.unfolded(G, level="op"), out("uo.svg")))
        timed("unfolded with gradients -> SVG",
              lambda: viz.render(viz.unfolded(G, grads=True), out("ug.svg")))
        timed("folded, variable level -> PNG", lambda: viz.render(viz.folded(G), out("f.png")))
        timed("folded, op level with gradients -> SVG",
              lambda: viz.render(viz.folded(G, level="op", grads=True), out("fo.svg")))
        timed("diagnose", lambda: viz.diagnose(G))
        try:
            import matplotlib  # noqa: F401
            timed("gradient chart -> PNG", lambda: viz.gradient_chart(G, out("c.png")))
        except ImportError:
            print("  gradient chart: matplotlib not installed, skipped")
    verdict = "within" if unf < BOUND else "OVER"
    print(f"  unfolded view of {T:,} steps: {unf:.1f} s, {verdict} the {BOUND:.0f} s bound")


if __name__ == "__main__":
    main()
