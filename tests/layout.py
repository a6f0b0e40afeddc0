"""Graphviz's computed layout of a figure, for the alignment tests (needs `dot`).

Flow: a viz figure's DOT text -> ``dot -Tplain`` -> node positions the tests compare.
"""
from __future__ import annotations

import shlex
import shutil
import subprocess


def positions(fig) -> dict[str, tuple[float, float]]:
    """Node name -> (x, y) centre in inches, as Graphviz lays the figure out."""
    dot = shutil.which("dot")
    if dot is None:
        import pytest
        pytest.skip("Graphviz `dot` not installed")
    out = subprocess.run([dot, "-Tplain"], input=fig.source.encode("utf-8"),
                         capture_output=True, check=True).stdout.decode("utf-8")
    pos = {}
    for line in out.splitlines():
        if line.startswith("node "):
            parts = shlex.split(line)
            pos[parts[1]] = (float(parts[2]), float(parts[3]))
    return pos


def column_spread(fig, V) -> float:
    """Largest horizontal spread (inches) among the drawn nodes of one step's column."""
    pos = positions(fig)
    cols: dict[int, list[float]] = {}
    for n, d in V.nodes(data=True):
        if d.get("column") is None or d["kind"] in ("param", "ellipsis") or d.get("bridge"):
            continue
        name = f"n{n}" if isinstance(n, int) else str(n)
        if name in pos:
            cols.setdefault(d["column"], []).append(pos[name][0])
    return max((max(xs) - min(xs) for xs in cols.values()), default=0.0)


def edge_paths(fig) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """(tail, head) -> the spline's control points (inches), as Graphviz routes the edge."""
    dot = shutil.which("dot")
    out = subprocess.run([dot, "-Tplain"], input=fig.source.encode("utf-8"),
                         capture_output=True, check=True).stdout.decode("utf-8")
    paths = {}
    for line in out.splitlines():
        if line.startswith("edge "):
            parts = shlex.split(line)
            n = int(parts[3])
            pts = [(float(parts[4 + 2 * i]), float(parts[5 + 2 * i])) for i in range(n)]
            paths[parts[1], parts[2]] = pts
    return paths
