"""tinygraph.adapters.torch: PyTorch recorded into the schema, drawn by viz.

The references are torch's own: ``.grad`` of an unrecorded run (the adapter must not change it)
and torch's gradient norms. Skipped when torch is not installed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
nx = pytest.importorskip("networkx")

import torch.nn as nn  # noqa: E402

import viz  # noqa: E402
from tinygraph.adapters import torch as tgt  # noqa: E402
from torch_models import ARCHS, B, H, ROOT, T, make, needs_dot, one_thread, recorded  # noqa: E402,F401 (one_thread: autouse)
from tinygraph.export import NODE_KEYS, Graph  # noqa: E402


@pytest.mark.parametrize("arch", ARCHS)
def test_recording_leaves_torch_grads_bit_for_bit(arch: str) -> None:
    plain, x, y = make(arch, 1)
    plain(x, y).backward()
    model, rec, g = recorded(arch, 1)
    for (name, p), (_, q) in zip(plain.named_parameters(), model.named_parameters()):
        assert torch.equal(p.grad, q.grad), name


@pytest.mark.parametrize("arch", ARCHS)
def test_param_grad_norms_are_torch_grads(arch: str) -> None:
    model, rec, g = recorded(arch, 2)
    got = {n["name"]: n["grad_norm"] for n in g.nodes if n["kind"] == "param"}
    assert len(got) == len(list(model.parameters()))
    want = sorted(float(p.grad.norm()) for p in model.parameters())
    assert sorted(got.values()) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("arch", ARCHS)
def test_export_follows_the_schema(arch: str, tmp_path) -> None:
    model, rec, g = recorded(arch, 3)
    assert isinstance(g, Graph)
    for n in g.nodes:
        assert set(NODE_KEYS) <= set(n), n
        assert n["kind"] in ("param", "input", "const", "op")
    assert all(e["source"] < e["target"] for e in g.edges)
    assert g.attrs["schema"] == 1 and g.attrs["loss"] == g.attrs["output"]
    path = tmp_path / "g.json"
    g.save(str(path))
    back = Graph.load(str(path))
    assert json.loads(back.to_json()) == json.loads(g.to_json())
    G = g.to_networkx()
    assert nx.is_directed_acyclic_graph(G)


@pytest.mark.parametrize("arch", ARCHS)
def test_viz_draws_the_torch_graph(arch: str, tmp_path) -> None:
    model, rec, g = recorded(arch, 5)
    F_ = viz.fold(g)
    h = [n for n in F_ if F_.nodes[n]["name"] == "h" and F_.nodes[n]["kind"] == "op"]
    assert len(h) == 1  # one role for h(1..T): the loop is drawn once
    # h(t-1) reaches step t through W (into h itself; into the gates of an LSTM)
    delays = [d for _, _, d in F_.out_edges(h[0], data=True) if d["delay"]]
    assert delays and any("W" in d["label"].split(",") for d in delays)
    if arch == "lstm_cell":
        assert "c" in [F_.nodes[n]["name"] for n in nx.nodes_with_selfloops(F_)]
    assert "digraph" in viz.folded(g).source
    assert "digraph" in viz.unfolded(g, grads=True).source
    report = viz.diagnose(g)
    assert report.verdict in ("healthy", "vanishing", "exploding")
    recurrent = [s.variable.split("/")[-1] for s in report.series]
    assert ("c" if "lstm" in arch else "h") in recurrent
    assert viz.param_contributions(g)  # per-step ∇W(t) from the edges' gradients
    path = tmp_path / "g.json"
    g.save(str(path))
    from viz.__main__ import main
    assert main([str(path), "--view", "folded", "-o", str(tmp_path / "f.dot")]) == 0
    assert main([str(path), "--grad", "-o", str(tmp_path / "u.dot")]) == 0


def test_backward_after_the_block_and_naming() -> None:
    torch.manual_seed(13)
    W = torch.randn(H, H, dtype=torch.float64, requires_grad=True)
    h = torch.randn(B, H, dtype=torch.float64)
    with tgt.record({"W": W}) as rec:
        a = rec.name(torch.tanh(h @ W), "s")
        loss = a.sum()
    loss.backward()
    g = rec.graph(output=loss)
    assert [n["name"] for n in g.nodes if n["kind"] == "param"] == ["W"]
    assert any(n["name"] == "s" for n in g.nodes)
    wnode = next(n for n in g.nodes if n["kind"] == "param")
    assert wnode["grad_norm"] == pytest.approx(float(W.grad.norm()), rel=1e-12)


def test_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="fused"):
        tgt.record(None, fused="both")
    with pytest.raises(TypeError, match="mapping"):
        tgt.record(42)
    rec = tgt.record()
    with rec:
        pass
    with pytest.raises(ValueError, match="nothing was recorded"):
        rec.graph()
    with tgt.record():
        with pytest.raises(RuntimeError, match="do not nest"):
            with tgt.record():
                pass


def test_a_long_cell_loop_records_and_folds() -> None:
    """Longer than Python's recursion limit in nodes: nothing recurses."""
    torch.manual_seed(17)
    cell = nn.RNNCell(2, 4)
    xs = torch.randn(1, 1200, 2)
    with tgt.record(cell) as rec:
        h = torch.zeros(1, 4)
        for t in range(xs.shape[1]):
            h = cell(xs[:, t], h)
        h.sum().backward()
    g = rec.graph(edge_grads=False)
    F_ = viz.fold(g)
    assert len(g) > 5 * sys.getrecursionlimit()
    assert max(F_.nodes[n]["count"] for n in F_) == 1200
    assert viz.diagnose(g).series


@needs_dot
def test_the_readme_example_runs(tmp_path, monkeypatch) -> None:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        text = fh.read()
    section = text[text.index("## PyTorch models"):]
    code = section[section.index("```python") + 9:section.index("```", section.index("```python") + 9)]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert os.path.getsize(tmp_path / "torch_elman_folded.png") > 1000
    assert os.path.getsize(tmp_path / "torch_elman_unfolded.png") > 1000


@needs_dot
def test_the_torch_exhibit_writes_its_figures(tmp_path) -> None:
    from demos import torch_exhibit
    figures = torch_exhibit.write(str(tmp_path))
    assert [name for name, _ in figures] == ["torch_elman_folded.png", "torch_elman_unfolded.png",
                                             "torch_lstm_folded.png", "torch_lstm_unfolded.png"]
    for name, _ in figures:
        assert (tmp_path / name).stat().st_size > 1000


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_import_tinygraph_never_imports_torch() -> None:
    r = _run("import sys, tinygraph, tinygraph.adapters; print('torch' in sys.modules)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_missing_torch_says_how_to_install() -> None:
    r = _run("import sys; sys.modules['torch'] = None\n"
             "from tinygraph.adapters import torch")
    assert r.returncode != 0
    assert 'pip install "tinygraph[torch]"' in r.stderr and "torch==2.13.0" in r.stderr


def test_gradient_chart_of_a_torch_graph(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    model, rec, g = recorded("rnn_cell", 18)
    path = viz.gradient_chart(g, str(tmp_path / "chart.png"))
    assert os.path.getsize(path) > 1000


def test_no_backward_gives_a_graph_without_gradients() -> None:
    model, x, y = make("gru_cell", 19)
    with tgt.record(model) as rec:
        model(x, y)
    g = rec.graph()
    assert all(n["grad_norm"] is None for n in g.nodes)
    assert all(e["grad_norm"] is None for e in g.edges)
    assert "digraph" in viz.folded(g).source
