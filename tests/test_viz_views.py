"""viz.unfolded and viz.folded: structure of the drawn graph and its DOT text."""
from __future__ import annotations

import re

import numpy as np
import pytest

import graphs
import layout
import viz
from viz.timeline import columns, timelines

ARCHS = sorted(graphs.ARCHITECTURES)


def dot_nodes(src):
    return [n for n in re.findall(r"^\s*(\w+) \[", src, flags=re.M)
            if n not in ("graph", "node", "edge")]


def dot_edges(src):
    return re.findall(r"^\s*(\w+) -> (\w+)(?: \[([^\]]*)\])?", src, flags=re.M)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("level", ["variable", "op"])
def test_every_view_draws_every_architecture_deterministically(arch, level):
    G = graphs.ARCHITECTURES[arch](5)
    for make in (lambda: viz.unfolded(G, level=level, max_steps=4),
                 lambda: viz.folded(G, level=level)):
        a, b = make().source, make().source
        assert a == b
        assert a.startswith("digraph") and len(dot_nodes(a)) >= 3


def test_unfolded_elman_columns_rows_and_labels():
    G = graphs.elman(4)
    V = viz.unfolded_graph(G, max_steps=None)
    hs = sorted((d["column"], d["step"]) for _, d in V.nodes(data=True) if d["name"] == "h")
    assert hs == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert len({d["row"] for _, d in V.nodes(data=True) if d["name"] == "h"}) == 1
    src = viz.unfolded(G, max_steps=None).source
    for t in range(1, 5):
        assert f"<B>h</B><SUP>({t})</SUP>" in src and f"<B>x</B><SUP>({t})</SUP>" in src
    assert src.count("<B>W</B>") == 3 and src.count("<B>U</B>") == 4
    assert src.count("<B>V</B>") == 4
    assert "rankdir=BT" in src and src.count("rank=same") == 6  # x h o yhat y L(t) rows
    assert "group=c3" in src


def test_unfolded_elides_long_sequences_honestly():
    G = graphs.elman(1000)
    V = viz.unfolded_graph(G, max_steps=6)
    steps = sorted({d["step"] for _, d in V.nodes(data=True) if d["step"] is not None})
    assert steps == [1, 2, 3, 998, 999, 1000]
    ell = [d for _, d in V.nodes(data=True) if d["kind"] == "ellipsis"]
    assert ell and {d["hidden"] for d in ell} == {994} and {d["column"] for d in ell} == {3}
    src = viz.unfolded(G, max_steps=6).source
    assert src.count("⋯ (994 steps)") == 1
    assert len(dot_nodes(src)) < 60


def test_one_step_too_many_is_shown_not_elided():
    # an elision column is as wide as a step: hiding a single step gains nothing ("(1 steps)")
    for T, hidden in ((7, None), (8, 2)):
        V = viz.unfolded_graph(graphs.elman(T), max_steps=6)
        ell = [d["hidden"] for _, d in V.nodes(data=True) if d["kind"] == "ellipsis"]
        assert (ell[0] if ell else None) == hidden, (T, ell)


def test_unfolded_parameters_once_or_per_step():
    G = graphs.elman(3)
    once = viz.unfolded_graph(G, level="op", max_steps=None)
    per = viz.unfolded_graph(G, level="op", max_steps=None, params="per_step")
    count = lambda V, name: sum(1 for _, d in V.nodes(data=True)
                                if d["kind"] == "param" and d["name"] == name)
    assert count(once, "W") == 1 and count(once, "U") == 1
    assert count(per, "W") == 3 and count(per, "U") == 3
    assert "matmul" in viz.unfolded(G, level="op").source


def test_unfolded_bidirectional_shares_one_time_axis_and_flips_backward_edges():
    G = graphs.bidirectional(4)
    tl = timelines(viz.load(G))
    assert len(set(tl.values())) == 1
    V = viz.unfolded_graph(G, max_steps=None)
    gcols = {d["step"]: d["column"] for _, d in V.nodes(data=True) if d["name"] == "g"}
    hcols = {d["step"]: d["column"] for _, d in V.nodes(data=True) if d["name"] == "h"}
    assert gcols == hcols
    src = viz.unfolded(G, max_steps=None).source
    back = [e for e in dot_edges(src) if e[2] and "dir=back" in e[2]]
    gg = [e for e in back if re.search(r'tooltip="g\(\d\) → g\(', e[2])]
    assert len(gg) == 3  # g(t+1) -> g(t), drawn left to right


def test_unfolded_seq2seq_decoder_columns_follow_the_encoder():
    G = viz.load(graphs.seq2seq(3, T_out=2))
    col_of, cols = columns(G)
    assert [(c.timeline, c.step) for c in cols] == [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2)]


def test_truncated_bptt_edges_are_dashed_in_both_views():
    G = graphs.elman(6, detach_every=2)
    unf = viz.unfolded(G, max_steps=None).source
    cut = [e for e in dot_edges(unf) if e[2] and "dashed" in e[2]]
    assert len(cut) == 2 and all(">cut</FONT>" in e[2] and "#cc0000" in e[2] for e in cut)
    assert unf.count(">cut</FONT>") == 2  # only the cut edges say so
    fold_src = viz.folded(G).source
    assert "dashed" not in fold_src  # some h -> h edges still carry gradient
    assert "dashed" in viz.folded(graphs.elman(6, detach_every=1)).source


def test_folded_dot_has_the_delay_marker_and_W_label():
    src = viz.folded(graphs.elman(3)).source
    squares = re.findall(r"^\s*(d\d+_\d+) \[.*shape=square", src, flags=re.M)
    assert len(squares) == 1 and "fillcolor=black" in src
    sq = squares[0]
    # the loop: ■ -> h labelled W, and h -> ■ drawn as ■ -> h reversed (dir=back), its
    # arrowhead pointing into the square
    loop = [e for e in dot_edges(src) if e[0] == sq]
    assert len(loop) == 2 and not [e for e in dot_edges(src) if e[1] == sq]
    assert sum("<B>W</B>" in e[2] for e in loop) == 1
    back = [e for e in loop if "dir=back" in e[2]]
    assert len(back) == 1 and "arrowhead=none" not in back[0][2] and "<B>W</B>" not in back[0][2]
    # x h o yhat y, one L (the total is the book's L), the square; no h(0) beside the loop
    assert len(dot_nodes(src)) == 7 and "<SUP>(0)</SUP>" not in src


def test_folded_marks_the_backward_loop():
    src = viz.folded(graphs.bidirectional(4)).source
    assert src.count("shape=square") == 2 and src.count("t+1") == 1


def test_folded_op_level_labels_the_recurrent_edge_with_its_parameter():
    src = viz.folded(graphs.elman(3), level="op").source
    assert src.count("shape=square") == 1
    assert re.search(r"d\d+_\d+ -> r\d+ \[label=<<B>W</B>>", src)


def test_bad_arguments_raise_actionable_errors():
    G = graphs.elman(3)
    with pytest.raises(ValueError, match="level must be"):
        viz.folded(G, level="ops")
    with pytest.raises(ValueError, match="max_steps"):
        viz.unfolded(G, max_steps=1)
    with pytest.raises(TypeError, match="networkx.DiGraph"):
        viz.folded([1, 2, 3])
    bad = graphs.elman(2)
    del bad.nodes[0]["kind"]
    with pytest.raises(viz.SchemaError, match="node 0 has no 'kind'"):
        viz.unfolded(bad)


def test_graphical_model_counts_parameters_and_connects_all_past_outputs():
    G = graphs.elman(8)
    src = viz.graphical_model(G, steps=5).source
    full = [e for e in dot_edges(src) if e[0].startswith("f") and e[0] != "fpad"]
    assert len(full) == 10  # 5 outputs, every earlier one feeds every later one
    assert "4<SUP>5</SUP> − 1 = 1,023" in src
    n_params = sum(len(d["shape"]) and __import__("math").prod(d["shape"])
                   for _, d in G.nodes(data=True) if d["kind"] == "param")
    assert f"recorded parameters: {n_params:,}" in src
    hh = [e for e in dot_edges(src) if e[0].startswith("g") and "invis" not in (e[2] or "")]
    assert len(hh) == 4 + 5  # h(t-1) -> h(t) and h(t) -> o(t)


def test_graphical_model_needs_outputs_and_a_recurrence():
    with pytest.raises(ValueError, match="no per-step output"):
        viz.graphical_model(graphs.dynamical(4))


def test_downward_edges_between_steps_are_drawn_reversed():
    # deep transition: h(t-1) -> a(t) enters a row below h; drawn a(t) -> h(t-1) with dir=back
    src = viz.unfolded(graphs.deep(5, "transition"), max_steps=None).source
    back = [e for e in dot_edges(src) if e[2] and "dir=back" in e[2] and " → L(" not in e[2]]
    assert len(back) == 4 and all("<B>W1</B>" in e[2] for e in back)


def test_every_timeline_column_has_a_bottom_anchor():
    b = graphs.Builder()
    b.scope, b.step = "rnn", 0
    h = b.input("h", kind="const")  # a named h(0) at step 0, as tinygraph.nn records it
    for t in (1, 2, 3):
        b.step = t
        h = b.affine([("W", h), ("U", b.input("x"))], name="h")
    src = viz.unfolded(b.G, max_steps=None).source
    # the x row has no step 0: an invisible point holds column 0 under h(0)
    assert re.search(r"^\s*p0r\d+ \[.*group=c0.*style=invis", src, flags=re.M)
    assert re.search(r"^\s*p0r\d+ -> n0 \[style=invis", src, flags=re.M)


def test_graphical_model_arcs_are_routed_apart_and_coloured_by_source():
    fig = viz.graphical_model(graphs.elman(6), steps=5)
    assert "cluster_full" in fig.source and "cluster_rnn" in fig.source
    pos = layout.positions(fig)
    ys = [pos[f"f{t}"][1] for t in range(1, 6)]
    assert ys == sorted(ys) and len(set(ys)) == 5  # one rank per output: no bundled band
    paths = layout.edge_paths(fig)
    arcs = {k: v for k, v in paths.items() if k[0].startswith("f") and k[1].startswith("f")}
    assert len(arcs) == 10
    mids = [tuple(round(c, 2) for c in p[len(p) // 2]) for p in arcs.values()]
    assert len(set(mids)) == 10  # every arc has a path of its own
    colours = {e[0]: re.search(r"color=\"(#\w+)\"", e[2]).group(1)
               for e in dot_edges(fig.source) if e[0].startswith("f") and e[1].startswith("f")}
    assert len(set(colours.values())) == 4  # y(1)..y(4) send arcs, each in its own colour


def test_a_graph_without_names_is_drawn_at_op_level_with_a_hint():
    b = graphs.Builder()
    h = None
    for t in (1, 2, 3):
        b.scope, b.step = "rnn", t
        x = b.input(None)
        h = b.affine([("U", x)] + ([("W", h)] if h is not None else []))
    for make in (viz.unfolded, viz.folded):
        src = make(b.G).source
        assert "tensor.named" in src and "tanh" in src and "<B>W</B>" in src


# --- the unfolded layout, checked on Graphviz's computed positions --------------------------

LAYOUT_ARCHS = ["elman", "jordan", "teacher_forcing", "single_output", "bidirectional",
                "seq2seq", "deep_stacked", "deep_transition", "deep_skip", "dynamical"]


@pytest.mark.parametrize("arch", LAYOUT_ARCHS)
@pytest.mark.parametrize("level", ["variable", "op"])
def test_nodes_of_one_step_share_a_column(arch, level):
    G = graphs.ARCHITECTURES[arch](5)
    opts = dict(level=level, max_steps=4, params="per_step" if level == "op" else "once")
    V = viz.unfolded_graph(G, **opts)
    assert layout.column_spread(viz.unfolded(G, **opts), V) < 0.02


def test_rows_are_in_the_books_order_and_columns_in_time_order():
    from tinygraph import nn  # the recorded Elman with its targets, as in fig. 10.3
    tg = pytest.importorskip("tinygraph")
    net = nn.RNN(3, 4, 3, rng=0)
    ids = np.random.default_rng(1).integers(0, 3, (1, 4))
    g = tg.trace(nn.sequence_loss(net(ids).o, ids))
    V = viz.unfolded_graph(g, max_steps=None)
    pos = layout.positions(viz.unfolded(g, max_steps=None))
    height = {}
    for n, d in V.nodes(data=True):
        if d["step"] == 2 and d["name"]:
            height[d["name"]] = pos[layout.dot_name(n)][1]
    assert height["x"] < height["h"] < height["o"] < height["L"] < height["y"]  # y on top
    hs = sorted((d["step"], pos[layout.dot_name(n)][0]) for n, d in V.nodes(data=True)
                if d["name"] == "h")
    assert [x for _, x in hs] == sorted(x for _, x in hs)  # h(0), h(1), ... left to right
    total = next(n for n, d in V.nodes(data=True) if d["name"] == "L" and d["step"] is None)
    assert pos[layout.dot_name(total)][1] > height["y"]  # the total L above every column


def test_the_elided_column_sits_between_the_shown_steps():
    G = graphs.elman(12)
    V = viz.unfolded_graph(G, max_steps=4)
    pos = layout.positions(viz.unfolded(G, max_steps=4))
    hx = {d["step"]: pos[layout.dot_name(n)][0] for n, d in V.nodes(data=True)
          if d["name"] == "h"}
    ell = [pos[layout.dot_name(n)][0] for n, d in V.nodes(data=True)
           if d["kind"] == "ellipsis" and layout.dot_name(n) in pos]
    assert sorted(hx) == [1, 2, 11, 12] and ell
    assert all(hx[2] < x < hx[11] for x in ell)


def test_bidirectional_initial_g_is_drawn_like_the_other_states():
    G = graphs.bidirectional(4)
    from tinygraph import nn  # the real net names its initial states g(τ+1)
    tg = pytest.importorskip("tinygraph")
    net = nn.BidirectionalRNN(2, 3, 2, rng=0)
    x = np.random.default_rng(0).standard_normal((1, 4, 2))
    g = tg.trace(nn.sequence_loss(net(x).o, np.array([[0, 1, 0, 1]])))
    V = viz.unfolded_graph(g, max_steps=None)
    fig = viz.unfolded(g, max_steps=None)
    box = layout.boxes(fig)
    widths = {round(box[layout.dot_name(n)][2], 3) for n, d in V.nodes(data=True)
              if d["name"] in ("g", "h")}
    assert len(widths) == 1  # g(5) is no larger than g(1)
    pos = layout.positions(fig)
    for t in range(1, 5):  # x(t), h(t), g(t), o(t) stacked in one column
        xs = {round(pos[layout.dot_name(n)][0], 2) for n, d in V.nodes(data=True)
              if d["step"] == t and d["name"] in ("x", "h", "g", "o")}
        assert len(xs) == 1
    assert G is not None


@pytest.mark.parametrize("arch", ["elman", "seq2seq", "bidirectional", "deep_skip"])
def test_op_level_per_step_edges_stay_in_their_column(arch):
    V = viz.unfolded_graph(graphs.ARCHITECTURES[arch](6), level="op", max_steps=4,
                           params="per_step")
    for u, v, d in V.edges(data=True):
        cu, cv = V.nodes[u].get("column"), V.nodes[v].get("column")
        if None in (cu, cv) or d["delay"] or "ellipsis" in (V.nodes[u]["kind"],
                                                            V.nodes[v]["kind"]):
            continue
        if V.nodes[u]["kind"] == "param" or "@" in str(u):
            assert cu == cv, (u, v)  # a parameter copy feeds only its own step
    shared = [n for n, d in V.nodes(data=True) if d["kind"] == "param" and "@" not in str(n)]
    assert not shared  # no parameter drawn once and fanned across the columns


@pytest.mark.parametrize("view", ["folded", "unfolded"])
@pytest.mark.parametrize("level", ["variable", "op"])
@pytest.mark.parametrize("arch", ["elman", "seq2seq", "tree"])
def test_every_node_and_edge_has_a_tooltip_not_an_internal_id(view, level, arch):
    G = graphs.ARCHITECTURES[arch](4, grads=True)
    src = getattr(viz, view)(G, level=level, grads=True).source
    for line in src.splitlines():
        line = line.strip()
        if "style=invis" in line or not re.match(r"^[\w.]+( -> [\w.]+)? \[", line) or \
                line.startswith(("graph ", "node ", "edge ")):
            continue
        if "shape=plaintext" in line:  # the elision marks
            continue
        assert "tooltip=" in line, line
    tips = re.findall(r'tooltip="([^"]*)"', src)
    assert tips and not any(re.fullmatch(r"[nr]\d+", t) for t in tips)
    if view == "unfolded" and level == "variable" and arch == "elman":
        assert any("‖∂L/∂·‖" in t and "scope" in t and "step" in t for t in tips)


def test_svg_tooltips_reach_the_browser(tmp_path):
    pytest.importorskip("graphviz")
    svg = viz.render(viz.unfolded(graphs.elman(3, grads=True)), tmp_path / "u.svg")
    text = open(svg, encoding="utf-8").read()
    assert text.count("xlink:title=") >= text.count('<g id="node') - 3
