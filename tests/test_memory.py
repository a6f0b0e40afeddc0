"""Memory stays bounded under truncated BPTT (detach every 100 steps), measured in a subprocess."""
from __future__ import annotations

import subprocess
import sys
import textwrap

PROG = textwrap.dedent("""
    import sys, tracemalloc
    import numpy as np
    sys.path.insert(0, {root!r})
    import tinygraph as tg
    T = int(sys.argv[1])
    rng = np.random.default_rng(0)
    W = tg.Parameter(rng.standard_normal((32, 32)) * 0.1, name="W")
    U = tg.Parameter(rng.standard_normal((32, 8)) * 0.1, name="U")
    xs = rng.standard_normal((T, 8, 4))
    tracemalloc.start()
    h = tg.zeros(32, 4)
    loss = 0.0
    for t in range(T):
        h = tg.tanh(W @ h + U @ xs[t])
        loss = loss + (h * h).mean()
        if (t + 1) % 100 == 0:
            loss.backward()
            h, loss = h.detach(), 0.0
    print(tracemalloc.get_traced_memory()[1])
""")


def _peak(T):
    import pathlib
    root = str(pathlib.Path(__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", PROG.format(root=root), str(T)],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def test_truncated_bptt_memory_is_flat_in_T():
    small, large = _peak(500), _peak(5000)
    assert large < 1.3 * small, (small, large)


def test_without_truncation_memory_grows_with_T():
    # the control: the same measurement does see growth when nothing is cut
    import pathlib
    root = str(pathlib.Path(__file__).resolve().parents[1])
    prog = PROG.replace("(t + 1) % 100 == 0", "t == T - 1").format(root=root)
    peaks = [int(subprocess.run([sys.executable, "-c", prog, str(T)], capture_output=True,
                                text=True, check=True).stdout) for T in (500, 2000)]
    assert peaks[1] > 3 * peaks[0], peaks
