"""The columnar export (tinygraph.export_columnar) and viz's reader of it (viz.schema).

A columnar archive must read back as the very graph node-link JSON gives, so every view draws
the same DOT from either file.
"""
from __future__ import annotations

import json
import math
import zipfile

import networkx as nx
import numpy as np
import pytest

import graphs
import tinygraph as tg
import viz
from tinygraph import nn
from tinygraph.export_columnar import save_columnar
from viz.columnar import read_columnar
from viz.schema import SchemaError, read_json

ARCHS = sorted(graphs.ARCHITECTURES)


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def assert_same_graph(A: nx.DiGraph, B: nx.DiGraph) -> None:
    """Equal ids, order, attributes and attribute types (NaN equals NaN)."""
    assert A.graph == B.graph
    assert list(A.nodes) == list(B.nodes)
    assert list(A.edges) == list(B.edges)
    for n in B:
        assert A.nodes[n].keys() == B.nodes[n].keys(), n
        for k, v in B.nodes[n].items():
            assert _same(A.nodes[n][k], v), (n, k, A.nodes[n][k], v)
    for e in B.edges:
        assert A.edges[e].keys() == B.edges[e].keys(), e
        for k, v in B.edges[e].items():
            assert _same(A.edges[e][k], v), (e, k, A.edges[e][k], v)


def save_both(G: nx.DiGraph, tmp_path) -> tuple[str, str]:
    """Write one fixture graph as node-link JSON and as a columnar archive."""
    data = nx.node_link_data(G, edges="edges")
    js, col = str(tmp_path / "g.json"), str(tmp_path / "g.npz")
    viz.save_json(G, js)
    save_columnar(data["nodes"], data["edges"], data["graph"], col)
    return js, col


def elman_graph(T: int, seed: int) -> tg.Graph:
    rnn = nn.RNN(3, 5, 3, rng=seed)
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, 3, (2, T)), rng.integers(0, 3, (2, T))
    loss = nn.sequence_loss(rnn(x).o, y)
    loss.backward(keep_grads=True)
    return tg.trace(loss)


def test_a_traced_graph_reads_back_exactly_as_to_networkx_gives_it(tmp_path):
    g = elman_graph(12, seed=1)
    g.save(str(tmp_path / "g.npz"), format="columnar")
    g.save(str(tmp_path / "g.json"))
    A = read_columnar(tmp_path / "g.npz")
    assert_same_graph(A, g.to_networkx())
    assert_same_graph(A, read_json(tmp_path / "g.json"))
    assert (tmp_path / "g.npz").stat().st_size < (tmp_path / "g.json").stat().st_size / 3  # zip headers dominate at 12 steps


def test_awkward_values_survive_nan_none_control_characters_and_mixed_types(tmp_path):
    G = graphs.elman(3, grads=True)
    graphs.with_grads(G, nan_at=5)
    G.nodes[0]["name"] = "x\x00"            # a trailing NUL: numpy str arrays would drop it
    G.nodes[1]["name"] = "h\x01\u2028"
    G.nodes[2]["value_norm"] = math.inf
    G.nodes[3]["extra"] = {"a": [1, 2.5]}     # an attribute of another engine: kept as JSON
    G.nodes[4]["extra"] = 7
    G.graph["flow"] = {"terms": [1, None, 2.0]}
    js, col = save_both(G, tmp_path)
    A, B = read_columnar(col), read_json(js)
    assert A.nodes[3]["extra"] == {"a": [1, 2.5]} and A.nodes[5]["extra"] is None
    assert A.nodes[0]["name"] == "x\x00"
    B.nodes[5]["extra"] = None  # a missing attribute is written as None
    for n in B:
        B.nodes[n].setdefault("extra", None)
    assert_same_graph(A, B)
    a, b = [d["args"] for _, _, d in A.edges(data=True) if d["args"] == [0]][:2]
    assert a is not b  # never one shared list


@pytest.mark.parametrize("arch", ARCHS)
def test_columnar_and_json_files_draw_the_same_dot(arch, tmp_path):
    G = graphs.ARCHITECTURES[arch](6, grads=True)
    js, col = save_both(G, tmp_path)
    for level in ("variable", "op"):
        for make in (lambda p: viz.folded(p, level=level, grads=True),
                     lambda p: viz.unfolded(p, level=level, max_steps=4),
                     lambda p: viz.unfolded(p, level=level, grads=True)):
            assert make(col).source == make(js).source


def test_a_recorded_rnn_draws_the_same_dot_and_diagnosis_from_both_files(tmp_path):
    g = elman_graph(40, seed=2)
    g.save(str(tmp_path / "g.npz"), format="columnar")
    g.save(str(tmp_path / "g.json"))
    col, js = str(tmp_path / "g.npz"), str(tmp_path / "g.json")
    for make in (viz.folded, lambda p: viz.unfolded(p, grads=True),
                 lambda p: viz.folded(p, level="op")):
        assert make(col).source == make(js).source
    assert str(viz.diagnose(col)) == str(viz.diagnose(js))


def test_bad_archives_raise_schema_errors_that_say_what_is_wrong(tmp_path):
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("a.txt", "hello")
    with pytest.raises(SchemaError, match="not a tinygraph columnar graph"):
        viz.load(other)
    g = elman_graph(3, seed=3)
    path = tmp_path / "g.npz"
    g.save(str(path), format="columnar")
    with np.load(path) as z:
        arrays = dict(z)
    arrays["node/op.codes"] = arrays["node/op.codes"][:-1]
    bad = tmp_path / "bad.npz"
    with open(bad, "wb") as fh:
        np.savez(fh, **arrays)
    with pytest.raises(SchemaError, match="column 'node/op' has .* entries"):
        viz.load(bad)
    arrays = dict(np.load(path))
    arrays["node/kind.values"] = np.array(json.dumps(["op", "param", "banana"]))
    arrays["node/kind.codes"] = np.full_like(arrays["node/kind.codes"], 2)
    with open(bad, "wb") as fh:
        np.savez(fh, **arrays)
    with pytest.raises(SchemaError, match="'kind' 'banana'"):
        viz.load(bad)


def test_save_rejects_an_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="format must be 'json' or 'columnar'"):
        elman_graph(2, seed=4).save(str(tmp_path / "g.x"), format="xml")
