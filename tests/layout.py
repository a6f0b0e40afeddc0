"""Graphviz's computed layout of a figure, for the alignment tests (needs `dot`).

Flow: a viz figure's DOT text -> ``dot -Tplain`` -> node positions the tests compare.
"""
from __future__ import annotations

import shlex
import shutil
import subprocess


def _plain(fig) -> str:
    dot = shutil.which("dot")
    if dot is None:
        import pytest
        pytest.skip("Graphviz `dot` not installed")
    return subprocess.run([dot, "-Tplain"], input=fig.source.encode("utf-8"),
                          capture_output=True, check=True).stdout.decode("utf-8")


def boxes(fig) -> dict[str, tuple[float, float, float, float]]:
    """Node name -> (x, y, width, height) in inches, as Graphviz lays the figure out."""
    out = {}
    for line in _plain(fig).splitlines():
        if line.startswith("node "):
            parts = shlex.split(line)
            out[parts[1]] = tuple(float(v) for v in parts[2:6])
    return out


def positions(fig) -> dict[str, tuple[float, float]]:
    """Node name -> (x, y) centre in inches, as Graphviz lays the figure out."""
    return {k: v[:2] for k, v in boxes(fig).items()}


def dot_name(n) -> str:
    """The DOT id the views give graph node ``n``."""
    from viz.figure import dot_id
    return dot_id(n)


def column_spread(fig, V) -> float:
    """Largest horizontal spread (inches) among the nodes of one step's column (its rows;
    parameter copies sit beside it, the context C between two time axes belongs to none)."""
    pos = positions(fig)
    cols: dict[int, list[float]] = {}
    for n, d in V.nodes(data=True):
        if d.get("row") is None or d["kind"] in ("param", "ellipsis") or d.get("bridge"):
            continue
        name = dot_name(n)
        if name in pos:
            cols.setdefault(d["column"], []).append(pos[name][0])
    return max((max(xs) - min(xs) for xs in cols.values()), default=0.0)


def edge_paths(fig) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """(tail, head) -> the spline's control points (inches), as Graphviz routes the edge."""
    paths = {}
    for line in _plain(fig).splitlines():
        if line.startswith("edge "):
            parts = shlex.split(line)
            n = int(parts[3])
            pts = [(float(parts[4 + 2 * i]), float(parts[5 + 2 * i])) for i in range(n)]
            paths[parts[1], parts[2]] = pts
    return paths
