"""viz.schema: the door into viz rejects what it cannot draw with a SchemaError, and makes text
printable (control characters, lone surrogates, names longer than Graphviz accepts)."""
from __future__ import annotations

import copy
import json

import networkx as nx
import pytest

import graphs
import viz
from viz.schema import MAX_TEXT, printable


def elman_with(attr, value, edge=False):
    G = graphs.elman(4, grads=True)
    h = [n for n, d in G.nodes(data=True) if d["name"] == "h"][1]
    if edge:
        G.edges[next(iter(G.in_edges(h)))][attr] = value
    else:
        G.nodes[h][attr] = value
    return G


BAD_NODE = [("op", 5), ("op", None), ("name", 5), ("name", ["h"]), ("shape", "abc"),
            ("shape", [1.5]), ("shape", {"a": 1}), ("dtype", 5), ("scope", 5), ("scope", ["a"]),
            ("step", "abc"), ("step", 1.5), ("step", [1]), ("step", True), ("param", 5),
            ("param", ["W"]), ("requires_grad", "yes"), ("src", 5), ("value_norm", "x"),
            ("grad_norm", "x"), ("grad_norm", [1]), ("kind", 5), ("kind", ["op"])]
BAD_EDGE = [("arg", "a"), ("arg", 1.5), ("arg", None), ("args", 5), ("args", ["a"]),
            ("grad_norm", "x")]


@pytest.mark.parametrize("attr,value", BAD_NODE)
@pytest.mark.parametrize("use", ["folded", "unfolded", "diagnose", "load"])
def test_a_wrong_typed_node_attribute_is_a_schema_error_naming_it(attr, value, use):
    G = elman_with(attr, value)
    with pytest.raises(viz.SchemaError, match=repr(attr)) as err:
        r = getattr(viz, use)(G)
        str(r)
    assert "node" in str(err.value)


@pytest.mark.parametrize("attr,value", BAD_EDGE)
def test_a_wrong_typed_edge_attribute_is_a_schema_error_naming_it(attr, value):
    with pytest.raises(viz.SchemaError, match=rf"edge .*'{attr}'"):
        viz.folded(elman_with(attr, value, edge=True))


@pytest.mark.parametrize("attr,value", [("step", 3.0), ("shape", (4, 2)), ("grad_norm", float("nan")),
                                        ("requires_grad", 1), ("scope", None)])
def test_what_the_schema_allows_is_accepted(attr, value):
    import numpy as np
    G = elman_with(attr, value)
    G.nodes[0]["step"] = np.int64(2) if G.nodes[0]["step"] is not None else None
    H = viz.load(G)
    assert all(type(d["step"]) is int for _, d in H.nodes(data=True) if d["step"] is not None)


@pytest.mark.parametrize("payload,match", [
    ({"nodes": [{"id": 0, "op": "leaf", "kind": "input"}]}, "no 'edges' key"),
    ({"edges": []}, "no 'nodes' key"),
    ({"nodes": [{"op": "leaf", "kind": "input"}], "edges": []}, "needs an 'id'"),
    ({"nodes": [{"id": 0, "op": "leaf", "kind": "input"}], "edges": [{"source": 0}]},
     "a 'target'"),
    ({"nodes": "abc", "edges": []}, "list of objects"),
    ([1, 2], "no 'nodes' key"),
])
def test_a_malformed_json_graph_is_a_schema_error(tmp_path, payload, match):
    (tmp_path / "g.json").write_text(json.dumps(payload))
    with pytest.raises(viz.SchemaError, match=match):
        viz.load(tmp_path / "g.json")


def test_a_folder_is_not_a_graph_file(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder"):
        viz.load(tmp_path)


def test_load_does_not_modify_the_callers_graph():
    G = elman_with("name", "h\x01")
    before = copy.deepcopy(dict(G.nodes(data=True)))
    viz.load(G)
    assert dict(G.nodes(data=True)) == before


@pytest.mark.parametrize("text,expect", [
    ("\x01\x02", "␁␂"), ("\n\t", "␊␉"), ("h\x7f", "h␡"), ("\x85", "\\x85"),
    ("\udc80", "\\udc80"), ("\ud800x", "\\ud800x"), ("h", "h"), ("ħ(t)", "ħ(t)"),
])
def test_printable_escapes_what_cannot_be_shown(text, expect):
    assert printable(text) == expect
    printable(text).encode("utf-8")  # no lone surrogate survives


def test_long_names_are_shortened_and_stay_distinct():
    a, b = "x" * 20000 + "a", "x" * 20000 + "b"
    pa, pb = printable(a), printable(b)
    assert len(pa) == len(pb) == MAX_TEXT and pa != pb and pa.startswith("x" * 100)
    assert printable("x" * MAX_TEXT) == "x" * MAX_TEXT


def test_names_in_a_loaded_graph_are_printable():
    G = nx.DiGraph()
    G.add_node(0, op="leaf", kind="input", name="\x01\x02", scope="\udc80" * 3)
    G.add_node(1, op="t" * 30000, kind="op", name="h")
    G.add_edge(0, 1)
    H = viz.load(G)
    assert H.nodes[0]["name"] == "␁␂" and H.nodes[0]["scope"] == "\\udc80" * 3
    assert len(H.nodes[1]["op"]) == MAX_TEXT
