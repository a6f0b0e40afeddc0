"""viz.tree: a recursive net recorded per node is drawn as the tree of fig. 10.14."""
from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

import graphs
import viz
from viz.fold import step_pieces
from viz.tree import is_tree

tg = pytest.importorskip("tinygraph")
nn = pytest.importorskip("tinygraph.nn")
from tinygraph.data import balanced_tree  # noqa: E402

FIG = (((0, 1), 2), (1, (2, 0)))     # 6 leaves, 5 internal nodes, heights 0..3
CHAIN = ((((0, 1), 2), 1), 0)        # left-deep: 5 leaves, 4 internal nodes


def traced(tree, per_node=True, grads=True):
    m = nn.RecursiveNN(3, 6, 3, rng=0)
    trees = tree if isinstance(tree, list) else [tree]
    o = m(tree, per_node=per_node).o
    L = tg.cross_entropy(o, tg.tensor(np.arange(len(trees)) % 3, name="y")).named("L")
    L.backward(keep_grads=grads)
    return tg.trace(L)


def count(tree):
    """(leaves, internal nodes) of a nested-tuple tree, without recursion."""
    leaves = inner = 0
    todo = [tree]
    while todo:
        t = todo.pop()
        if isinstance(t, tuple):
            inner += 1
            todo.extend(t)
        else:
            leaves += 1
    return leaves, inner


def named(V, name):
    return sorted(n for n, d in V.nodes(data=True) if d["name"] == name)


@pytest.mark.parametrize("tree", [FIG, CHAIN, balanced_tree([0, 1, 2, 0, 1, 2, 1, 1]), (0, 1)])
def test_per_node_tree_unfolds_into_the_tree(tree):
    V = viz.unfolded_graph(traced(tree))
    n_leaves, n_inner = count(tree)
    assert V.graph["layout"] == "tree"
    xs, hs, (o,) = named(V, "x"), named(V, "h"), named(V, "o")
    assert len(xs) == n_leaves and len(hs) == n_leaves + n_inner
    assert [V.nodes[x]["leaf"] for x in xs] == list(range(1, n_leaves + 1))
    for x in xs:                                     # x -> its own h, through U
        (h,) = V.successors(x)
        assert V.nodes[h]["name"] == "h" and V.edges[x, h]["label"] == "U"
    up = {h: list(V.successors(h)) for h in hs}      # every h has one parent: a tree
    assert all(len(p) == 1 for p in up.values())
    roots = [h for h, (p,) in up.items() if p == o]
    assert len(roots) == 1 and V.edges[roots[0], o]["label"] == "V"
    inner = [h for h in hs if V.in_degree(h) == 2]
    assert len(inner) == n_inner
    for h in inner:                                  # child -> parent, through W, one step up
        for c in V.predecessors(h):
            assert V.nodes[c]["name"] == "h" and V.edges[c, h]["label"] == "W"
            assert V.nodes[c]["step"] < V.nodes[h]["step"] and V.edges[c, h]["delay"]


def test_tree_dot_has_the_leaves_in_one_rank_and_one_rank_per_height():
    src = viz.unfolded(traced(FIG)).source
    blocks = re.findall(r"subgraph (tier\d+) \{(.*?)\n\t\}", src, re.S)
    labels = [re.findall(r"label=<<B>(\w)</B>(?:<SUP>\((\d+)\)</SUP>)?>", b) for _, b in blocks]
    assert all("rank=same" in b for _, b in blocks)
    assert labels[0] == [("x", str(i)) for i in range(1, 7)]      # x(1) .. x(6), left to right
    assert [len(ls) for ls in labels[1:]] == [6, 2, 2, 1]          # h by height: leaves .. root
    assert all(ls and {n for n, _ in ls} == {"h"} for ls in labels[1:])
    assert src.count("<B>U</B>") == 6 and src.count("<B>W</B>") == 10 and \
        src.count("<B>V</B>") == 1
    assert "rankdir=BT" in src and "shape=square" not in src     # no delay markers unfolded
    assert src == viz.unfolded(traced(FIG)).source                 # deterministic


def test_tree_overlay_and_op_level_draw_too():
    g = traced(FIG)
    src = viz.unfolded(g, grads=True).source
    assert src.count("‖∇‖") >= 11 and "penwidth" in src
    op = viz.unfolded(g, level="op")
    assert op.source.count("label=<concat>") == 5 and "tier0" in op.source
    params = re.search(r"subgraph params \{(.*?)\n\t\}", op.source, re.S).group(1)
    assert "rank=source" in params and params.count("shape=box") == 5   # U W b V c, once


def test_folded_tree_is_one_h_with_a_w_loop_for_any_tree_and_either_mode():
    small, big = traced((0, 1)), traced(balanced_tree([i % 3 for i in range(13)]))
    assert viz.folded(small).source == viz.folded(big).source
    assert viz.folded(small, level="op").source == viz.folded(big, level="op").source
    assert viz.folded(big).source == viz.folded(traced(FIG, per_node=False)).source
    F = viz.fold(big)
    (h,) = [r for r in F if F.nodes[r]["name"] == "h"]
    assert F.nodes[h]["count"] == 25 and F.edges[h, h]["label"] == "W" and F.edges[h, h]["delay"]
    assert viz.folded(big).source.count("shape=square") == 1


def test_tree_diagnosis_matches_the_batched_mode():
    a, b = viz.diagnose(traced(FIG)), viz.diagnose(traced(FIG, per_node=False))
    (sa,), (sb,) = a.series, b.series
    assert sa.steps == sb.steps == (0, 1, 2, 3)
    np.testing.assert_allclose(sa.norms, sb.norms, rtol=1e-10)
    assert a.verdict == b.verdict


def test_several_trees_share_one_o():
    V = viz.unfolded_graph(traced([FIG, (0, 1)]))
    (o,) = named(V, "o")
    assert len(named(V, "x")) == 8 and V.in_degree(o) == 2


def test_sequences_and_batched_trees_keep_their_columns():
    for arch, make in sorted(graphs.ARCHITECTURES.items()):
        assert not is_tree(make(5)), arch
        assert viz.unfolded_graph(make(5)).graph.get("layout") is None
    assert not is_tree(traced(FIG, per_node=False))
    assert viz.unfolded_graph(traced(FIG, per_node=False)).graph.get("layout") is None


def test_a_recurrent_step_is_one_piece_a_tree_height_is_several():
    G = viz.load(graphs.elman(4))
    pieces = step_pieces(G)
    for t in range(1, 5):
        assert len({pieces[n] for n in pieces if G.nodes[n]["step"] == t}) == 1
    T = viz.load(traced(FIG))
    pieces = step_pieces(T)
    assert len({pieces[n] for n in pieces if T.nodes[n]["step"] == 1}) == 2


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed")
def test_tree_renders_a_real_png(tmp_path):
    path = viz.render(viz.unfolded(traced(balanced_tree([0, 1, 2, 0, 1, 2, 1, 1]))),
                      str(tmp_path / "tree.png"))
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 600 and height > 600


def test_fig_10_14_four_leaves_root_centred_y_on_top():
    import layout
    g = traced(((0, 1), (2, 0)))
    fig = viz.unfolded(g)
    T = viz.unfolded_graph(g)
    pos = layout.positions(fig)
    at = {n: pos[f"n{n}"] for n in T}
    leaves = sorted((d["leaf"], at[n][0]) for n, d in T.nodes(data=True) if d["leaf"])
    assert [i for i, _ in leaves] == [1, 2, 3, 4]
    hs = [n for n, d in T.nodes(data=True) if d["name"] == "h"]
    root = max(hs, key=lambda n: T.nodes[n]["step"])
    middle = (leaves[0][1] + leaves[-1][1]) / 2
    assert abs(at[root][0] - middle) < 0.05  # the root stands over the middle of the leaves
    name = {n: d["name"] for n, d in T.nodes(data=True)}
    top = {name[n]: at[n][1] for n in T if name[n] in ("o", "L", "y")}
    assert at[root][1] < top["o"] < top["L"] < top["y"]  # o, L, then y on top, as the book
    labels = {e[2] for e in re.findall(r"(\w+) -> (\w+) \[label=<<B>(\w+)</B>>", fig.source)}
    assert labels == {"U", "W", "V"}
