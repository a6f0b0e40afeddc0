"""viz.render (real Graphviz), the command line, and the layering rule."""
from __future__ import annotations

import ast
import importlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import networkx as nx
import pytest

import graphs
import viz
from viz import figure

RENDER = importlib.import_module("viz.render")  # viz.render is the function

VIZ_DIR = pathlib.Path(viz.__file__).parent
ROOT = VIZ_DIR.parent

needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz `dot` not installed (apt-get install graphviz)")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_viz_imports_nothing_from_tinygraph():
    offenders = []
    for path in sorted(VIZ_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                mods = [node.module or ""]
            offenders += [f"{path.name}: {m}" for m in mods if m.split(".")[0] == "tinygraph"]
    assert offenders == []
    assert len(list(VIZ_DIR.glob("*.py"))) >= 10


def test_viz_files_stay_small_and_documented():
    for path in VIZ_DIR.glob("*.py"):
        text = path.read_text()
        assert len(text.splitlines()) < 500, path.name
        assert ast.get_docstring(ast.parse(text)), f"{path.name} has no module docstring"


@needs_dot
def test_render_svg_and_png_are_real_and_readable(tmp_path):
    G = graphs.elman(6)
    svg = viz.render(viz.folded(G), tmp_path / "f.svg")
    text = open(svg, encoding="utf-8").read()
    assert text.lstrip().startswith("<?xml") and "<svg" in text and text.count("<g id=\"node") == 8
    assert not os.path.exists(tmp_path / "f.dot")  # only when asked, or when dot is missing
    viz.render(viz.folded(G), tmp_path / "k.svg", keep_dot=True)
    assert (tmp_path / "k.dot").read_text().startswith("digraph folded")
    png = viz.render(viz.unfolded(G, max_steps=4), tmp_path / "u.png")
    w, h = png_size(open(png, "rb").read())
    assert w > 800 and h > 400  # readable, not a thumbnail
    pdf = viz.render(G, tmp_path / "x.pdf", view="folded", level="op")
    assert open(pdf, "rb").read(5) == b"%PDF-"


def test_render_dot_needs_no_graphviz_and_rejects_unknown_suffixes(tmp_path):
    out = viz.render(viz.folded(graphs.dynamical(3)), tmp_path / "d.dot")
    assert open(out).read().startswith("digraph folded")
    with pytest.raises(ValueError, match=r"\.svg"):
        viz.render(viz.folded(graphs.dynamical(3)), tmp_path / "d.jpeg2")


def test_missing_dot_raises_install_hint_and_still_writes_dot(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(viz.GraphvizNotFound) as err:
        viz.render(viz.folded(graphs.elman(3)), tmp_path / "f.png")
    msg = str(err.value)
    assert "apt-get install graphviz" in msg and str(tmp_path / "f.dot") in msg
    assert (tmp_path / "f.dot").read_text().startswith("digraph")
    assert not (tmp_path / "f.png").exists()


@needs_dot
def test_jupyter_repr_is_svg():
    svg = viz.folded(graphs.dynamical(3))._repr_svg_()
    assert "<svg" in svg


def test_json_round_trip_is_lossless(tmp_path):
    G = graphs.bidirectional(4, grads=True)
    viz.save_json(G, tmp_path / "g.json")
    data = json.loads((tmp_path / "g.json").read_text())
    assert "edges" in data and "links" not in data
    H = viz.load(tmp_path / "g.json")
    assert nx.utils.graphs_equal(H, viz.load(G))
    assert viz.folded(H).source == viz.folded(G).source


def test_load_rejects_what_it_cannot_read(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(viz.SchemaError, match="not valid JSON"):
        viz.load(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="nope.json"):
        viz.load(tmp_path / "nope.json")
    cyc = nx.DiGraph([(0, 1), (1, 0)])
    nx.set_node_attributes(cyc, "op", "kind")
    nx.set_node_attributes(cyc, "add", "op")
    with pytest.raises(viz.SchemaError, match="cycle"):
        viz.load(cyc)


def test_duck_typed_to_networkx_is_accepted():
    class Exported:
        def to_networkx(self):
            return graphs.dynamical(3)
    assert viz.folded(Exported()).source == viz.folded(graphs.dynamical(3)).source


def run_cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "viz", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


@needs_dot
def test_cli_round_trip_from_saved_json(tmp_path):
    G = graphs.elman(30, grads=True)
    viz.save_json(G, tmp_path / "g.json")
    p = run_cli(str(tmp_path / "g.json"), "--view", "folded", "--grad", "-o",
                str(tmp_path / "f.svg"), "--diagnose")
    assert p.returncode == 0, p.stderr
    assert "<svg" in (tmp_path / "f.svg").read_text()
    # a loss at every step and no exported flow: long-range and local gradient cannot be told
    # apart (the fixture's decaying totals once read VANISHING, opposite to its overlay)
    assert "gradient flow: UNDETERMINED" in p.stdout
    p = run_cli(str(tmp_path / "g.json"), "--level", "op", "--max-steps", "4", "-o",
                str(tmp_path / "u.png"))
    assert p.returncode == 0, p.stderr
    assert png_size((tmp_path / "u.png").read_bytes())[0] > 800
    p = run_cli(str(tmp_path / "g.json"), "--view", "unfolded")
    assert p.returncode == 0 and p.stdout == viz.unfolded(G).source


def test_cli_errors_are_one_clear_line(tmp_path):
    p = run_cli(str(tmp_path / "missing.json"))
    assert p.returncode == 1 and "graph file not found" in p.stderr
    assert "Traceback" not in p.stderr


def dot_positions(src: str) -> dict:
    out = subprocess.run(["dot", "-Tplain"], input=src, capture_output=True, text=True,
                         check=True).stdout
    return {p[1]: (float(p[2]), float(p[3])) for p in (l.split() for l in out.splitlines())
            if p[0] == "node"}


@needs_dot
def test_layout_steps_run_left_to_right_and_the_decoder_sits_above_the_encoder():
    G = graphs.seq2seq(4, T_out=3)
    V = viz.unfolded_graph(G, max_steps=None)
    pos = dot_positions(viz.unfolded(G, max_steps=None).source)
    enc = sorted((d["step"], pos[f"n{n}"]) for n, d in V.nodes(data=True)
                 if d["name"] == "h" and d["scope"] == "encoder")
    dec = sorted((d["step"], pos[f"n{n}"]) for n, d in V.nodes(data=True)
                 if d["name"] == "h" and d["scope"] == "decoder")
    for line in (enc, dec):
        xs = [p[0] for _, p in line]
        assert xs == sorted(xs) and len(set(xs)) == len(xs)  # steps left to right
    assert min(p[1] for _, p in dec) > max(p[1] for _, p in enc)  # staircase
    assert len({round(p[1], 3) for _, p in enc}) == 1  # one row


@needs_dot
def test_cli_graphical_view(tmp_path):
    viz.save_json(graphs.elman(6), tmp_path / "g.json")
    p = run_cli(str(tmp_path / "g.json"), "--view", "graphical", "-o", str(tmp_path / "gm.svg"))
    assert p.returncode == 0, p.stderr
    assert "tabular parameters" in (tmp_path / "gm.svg").read_text()


def test_dot_text_is_the_same_in_every_process(tmp_path):
    viz.save_json(graphs.bidirectional(5), tmp_path / "g.json")
    code = ("import sys, viz; g = sys.argv[1]; "
            "print(viz.unfolded(g, level='op', max_steps=4).source + viz.folded(g).source)")
    outs = set()
    for seed in ("1", "2", "3"):
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED=seed)
        p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "g.json")],
                           capture_output=True, text=True, env=env, timeout=120)
        assert p.returncode == 0, p.stderr
        outs.add(p.stdout)
    assert len(outs) == 1


# --- the import graph of viz ---------------------------------------------------------------

def viz_imports() -> dict[str, set[str]]:
    """module -> viz modules it imports (at top level or inside functions)."""
    graph = {}
    for path in sorted(VIZ_DIR.glob("*.py")):
        mod = path.stem
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                found |= {node.module} if node.module else {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("viz."):
                found.add(node.module.split(".")[1])
        graph[mod] = {m.split(".")[0] for m in found}
    return graph


def test_viz_import_graph_has_no_cycle():
    G = nx.DiGraph((m, d) for m, deps in viz_imports().items() for d in deps)
    assert "figure" in G and G.has_edge("folded", "figure") and G.has_edge("render", "folded")
    assert not G.has_edge("folded", "render")  # the views do not import the file writer
    cycles = list(nx.simple_cycles(G))
    assert cycles == [], f"import cycles in viz: {cycles}"


def test_figure_is_one_class_everywhere():
    assert viz.Figure is RENDER.Figure is figure.Figure
    assert type(viz.folded(graphs.dynamical(3))) is figure.Figure


# --- bad input ---------------------------------------------------------------------------

def chain(ids, names, ops=None):
    G = nx.DiGraph()
    for i, (n, name) in enumerate(zip(ids, names)):
        G.add_node(n, op="leaf" if i == 0 else (ops[i] if ops else "tanh"),
                   kind="input" if i == 0 else "op", name=name)
    G.add_edges_from(zip(ids, ids[1:]))
    return G


def plain_layout(src: str) -> tuple[list, list]:
    """Nodes and edges as Graphviz itself reads the DOT text."""
    out = subprocess.run(["dot", "-Tplain"], input=src.encode("utf-8"), capture_output=True,
                         check=True).stdout.decode("utf-8")
    rows = [line.split() for line in out.splitlines()]
    return [r[1] for r in rows if r[0] == "node"], [(r[1], r[2]) for r in rows if r[0] == "edge"]


VIEWS = [("unfolded", {}), ("unfolded", {"level": "op"}), ("folded", {}),
         ("folded", {"level": "op"})]


@needs_dot
@pytest.mark.parametrize("view,opts", VIEWS)
@pytest.mark.parametrize("evil", ["<a> ; X [label=boom]; <b>", 'a" ; X [label=boom]; "b',
                                  "a\\", "a:b:n", "node", "-- ->", "a\\\" ; X [label=boom] ; b"])
def test_node_ids_cannot_inject_dot(view, opts, evil):
    G = chain([evil, "y", "z"], ["x", "h", "o"])
    src = getattr(viz, view)(G, **opts).source
    nodes, edges = plain_layout(src)
    assert "X" not in nodes and "label=boom" not in src
    assert len(nodes) == len(set(nodes)) and len(edges) >= 2
    assert "<a>" not in src  # never an HTML string id


@needs_dot
@pytest.mark.parametrize("evil", ["<a> ; X [label=boom]; <b>", 'a" ; X [label=boom]; "b',
                                  "a\\", "a:b:n", "a\\\" ; X [label=boom] ; b"])
def test_a_figure_quotes_any_id_it_is_given(evil):
    fig = figure.Figure(name="f")
    fig.node(evil, label="x")
    fig.edge(evil, "b")
    nodes, edges = plain_layout(fig.source)
    assert sorted(nodes) == sorted({nodes[0], "b"}) and len(nodes) == 2 and len(edges) == 1


@needs_dot
@pytest.mark.parametrize("view,opts", VIEWS)
def test_int_and_string_ids_are_different_nodes(view, opts):
    G = chain([1, "n1", 2, "2", "s2"], ["x", "h", "o", "L", "y"])
    nodes, edges = plain_layout(getattr(viz, view)(G, **opts).source)
    assert len(set(nodes)) >= 5 and len(edges) >= 4


def test_dot_id_is_injective_and_plain():
    ids = [0, 1, -1, "n1", "1", "m1", "s", "", "a b", "a_20_b", "_", "\x00", "ħ", 1.5, "1.5",
           (1, 2)]
    mapped = [figure.dot_id(n) for n in ids]
    assert len(set(mapped)) == len(ids)
    assert all(m.isascii() and m.replace("_", "").isalnum() for m in mapped)


@needs_dot
@pytest.mark.parametrize("view,opts", VIEWS + [("graphical_model", {})])
@pytest.mark.parametrize("name", ["\x01\x02\x03", "\udc80\udcff", "x" * 20000, "<&>\"'",
                                  "\\", "\x85", "\n"])
def test_unprintable_and_very_long_names_render(tmp_path, view, opts, name):
    b = graphs.Builder()
    b.scope = "rnn"
    h = b.input("h", kind="const")
    for t in (1, 2, 3):
        b.step = t
        h = b.affine([("W", h), ("U", b.input("x"))], name=name)
        b.output_and_loss(h)
    svg = viz.render(getattr(viz, view)(b.G, **opts), tmp_path / "f.svg")
    text = open(svg, encoding="utf-8").read()
    assert "<svg" in text and text.count('class="node"') >= 3


# --- render writes whole files or nothing ----------------------------------------------------

def fake_dot(tmp_path, script: str) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dot").write_text("#!/bin/sh\n" + script + "\n")
    (bin_dir / "dot").chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


def test_a_failing_graphviz_leaves_no_partial_file(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "f.svg").write_text("old picture")
    monkeypatch.setenv("PATH", fake_dot(tmp_path, "printf '<svg half'; echo 'Error: boom' >&2; exit 3"))
    with pytest.raises(viz.GraphvizError, match="boom"):
        viz.render(viz.folded(graphs.elman(3)), out / "f.svg")
    with pytest.raises(viz.GraphvizError):
        viz.render(viz.folded(graphs.elman(3)), out / "g.png")
    assert sorted(os.listdir(out)) == ["f.svg"] and (out / "f.svg").read_text() == "old picture"


def test_write_atomic_removes_its_temporary_file_on_failure(tmp_path, monkeypatch):
    def broken(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        RENDER.write_atomic(str(tmp_path / "x.svg"), b"<svg/>")
    assert os.listdir(tmp_path) == []


def test_render_names_the_folder_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="is a file"):
        viz.render(viz.folded(graphs.elman(3)), tmp_path / "file" / "sub" / "f.dot")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        (tmp_path / "d.dot").mkdir()
        viz.render(viz.folded(graphs.elman(3)), tmp_path / "d.dot")


# --- the command line fails in one line ------------------------------------------------------

def cli_cases(tmp_path):
    good = tmp_path / "g.json"
    viz.save_json(graphs.elman(3), good)
    (tmp_path / "afile").write_text("")
    (tmp_path / "adir.svg").mkdir()
    (tmp_path / "noedges.json").write_text(json.dumps({"nodes": [{"id": 0, "op": "leaf",
                                                                  "kind": "input"}]}))
    data = json.loads(good.read_text())
    data["nodes"][1]["name"] = 5
    (tmp_path / "badtype.json").write_text(json.dumps(data))
    return {
        "input is a folder": ([str(tmp_path)], "is a folder"),
        "output parent is a file": ([str(good), "-o", str(tmp_path / "afile" / "x.svg")],
                                    "is a file"),
        "output is a folder": ([str(good), "-o", str(tmp_path / "adir.svg")], "is a folder"),
        "no edges": ([str(tmp_path / "noedges.json")], "no 'edges' key"),
        "wrong attribute type": ([str(tmp_path / "badtype.json")], "'name' is int"),
        "unknown suffix": ([str(good), "-o", str(tmp_path / "x.jpeg2")], "suffix"),
        "missing file": ([str(tmp_path / "missing.json")], "not found"),
    }


CLI_CASES = ["input is a folder", "output parent is a file", "output is a folder", "no edges",
             "wrong attribute type", "unknown suffix", "missing file"]


@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_failures_are_one_line_without_traceback(tmp_path, case):
    args, expect = cli_cases(tmp_path)[case]
    p = run_cli(*args)
    assert p.returncode == 1, p.stdout
    assert p.stderr.startswith("python -m viz: error: ") and expect in p.stderr
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr


def test_cli_graphviz_failure_is_one_line(tmp_path):
    viz.save_json(graphs.elman(3), tmp_path / "g.json")
    env = dict(os.environ, PYTHONPATH=str(ROOT),
               PATH=fake_dot(tmp_path, "echo 'Error: syntax error in line 1' >&2; exit 1"))
    p = subprocess.run([sys.executable, "-m", "viz", str(tmp_path / "g.json"), "-o",
                        str(tmp_path / "f.png")], capture_output=True, text=True, env=env,
                       timeout=120)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    assert "dot -Tpng" in p.stderr and "syntax error in line 1" in p.stderr
    assert not (tmp_path / "f.png").exists()


def test_cli_debug_shows_the_traceback(tmp_path):
    p = run_cli(str(tmp_path / "missing.json"), "--debug")
    assert p.returncode == 1 and "Traceback" in p.stderr
