"""viz benchmarks: drawing a 10,000-step Elman RNN (about 130,000 recorded nodes).

Run with `make bench` (or `python -m bench.bench_viz`; `python -m bench.bench_viz trace` runs the
trace rows only; `python -m bench.bench_viz scale [T ...]` the scale rows only: every stage from
recording to the PNGs at T = 10,000 and 100,000 steps, each in its own process with its peak
memory, the views reading the columnar file). Each stage is timed once, in the order a user meets them: record + backward,
trace + export, then every view rendered to a file through Graphviz. The trace rows time
`tg.trace` and `to_networkx` at 10,000 and 100,000 steps: linear export means the same time per
node at both sizes. The one bound printed (a generous 60 s for the unfolded view, which the issue
asks to take "seconds, not minutes") is reported, not asserted: tests do not depend on machine
speed.
"""
from __future__ import annotations

import functools
import inspect
import os
import pickle
import resource
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


def in_child(fn):
    """Run ``fn()`` in a forked process: (its small result, wall s, CPU s, peak RSS in MB).

    The peak is the child's own high-water mark, so each stage's memory is measured apart from
    the stages before it (the parent holds only file names). Needs os.fork (Linux, macOS).
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run, report, leave without cleanup handlers
        code = 0
        try:
            out, wall, cpu = wall_and_cpu(fn)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            msg = (out, wall, cpu, peak)
        except BaseException as exc:  # noqa: BLE001 - reported by the parent
            msg, code = (f"{type(exc).__name__}: {exc}",), 1
        with os.fdopen(write, "wb") as fh:
            pickle.dump(msg, fh)
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        msg = pickle.load(fh)
    os.waitpid(pid, 0)
    if len(msg) == 1:
        raise RuntimeError(f"benchmark stage failed in its process: {msg[0]}")
    return msg


def scale_rows(steps=(10_000, 100_000)) -> None:
    """Every stage of drawing a long nn.RNN, each in its own process (time and peak memory).

    The views start from the saved file, as a user opening a recording would; the last row is
    the whole path in one process: record -> trace -> folded PNG + elided unfolded PNG.
    """
    print("# views that scale: nn.RNN + sequence_loss, each stage in its own process")
    print("  (CPU seconds are the steadier figure on a shared machine; RSS = the stage's peak)")
    columnar = "format" in inspect.signature(tg.Graph.save).parameters
    with tempfile.TemporaryDirectory() as tmp:
        for T in steps:
            js, col = os.path.join(tmp, f"g{T}.json"), os.path.join(tmp, f"g{T}.npz")
            out = lambda name: os.path.join(tmp, f"{T}_{name}")  # noqa: E731
            src = col if columnar else js

            def record_and_save():
                loss = elman_loss(T)
                t = {}
                g, t["trace"], _ = wall_and_cpu(functools.partial(tg.trace, loss))
                _, t["to_networkx"], _ = wall_and_cpu(g.to_networkx)
                _, t["save JSON"], _ = wall_and_cpu(functools.partial(g.save, js))
                if columnar:
                    _, t["save columnar"], _ = wall_and_cpu(
                        functools.partial(g.save, col, format="columnar"))
                return t, len(g.nodes)

            stages = [("record + trace + save", record_and_save),
                      ("load JSON", lambda: viz.load(js) and None)]
            if columnar:
                stages.append(("load columnar", lambda: viz.load(col) and None))
            stages += [
                ("variable_level", lambda: viz.variable_level(src) and None),
                ("folded -> PNG", lambda: viz.render(viz.folded(src), out("f.png"))),
                ("elided unfolded -> PNG",
                 lambda: viz.render(viz.unfolded(src), out("u.png"))),
                ("diagnose", lambda: viz.diagnose(src) and None),
                ("record -> trace -> both PNGs", lambda: (
                    lambda g: (viz.render(viz.folded(g), out("f2.png")),
                               viz.render(viz.unfolded(g), out("u2.png"))))(
                    tg.trace(elman_loss(T))) and None),
            ]
            print(f"  T = {T:,} (views read {os.path.basename(src)})")
            for label, fn in stages:
                res, wall, cpu, peak = in_child(fn)
                print(f"    {label:30s} {wall:7.2f} s wall {cpu:7.2f} s CPU {peak:7.0f} MB")
                if label.startswith("record + trace"):
                    times, n = res
                    for k, sec in times.items():
                        print(f"      {k:28s} {sec:7.2f} s wall")
                    sizes = [("JSON", js)] + ([("columnar", col)] if columnar else [])
                    print("      " + ", ".join(f"{k} {os.path.getsize(p) / 1e6:.1f} MB"
                                               for k, p in sizes) + f" ({n:,} nodes)")


def main() -> None:
    if sys.argv[1:] == ["trace"]:
        trace_rows()
        return
    if sys.argv[1:2] == ["scale"]:
        scale_rows(tuple(int(t) for t in sys.argv[2:]) or (10_000, 100_000))
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
