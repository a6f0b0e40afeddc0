"""tinygraph.adapters.torch: PyTorch recorded into the schema, drawn by viz.

The references are torch's own: ``.grad`` of an unrecorded run (the adapter must not change it)
and torch's gradient norms. Skipped when torch is not installed.
"""
from __future__ import annotations

import importlib.util
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
from torch_models import ARCHS, B, D, H, K, ROOT, T, make, needs_dot, one_thread, recorded  # noqa: E402,F401 (one_thread: autouse)
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
    # T = 5 from a small init: the flow from L(5) reaches h(1) (c(1)) well above 1e-3 of local
    assert report.verdict == "healthy", str(report)
    recurrent = sorted(s.variable.split("/")[-1] for s in report.series)
    assert recurrent == (["c", "h"] if "lstm" in arch else ["h"])
    # every recurrent variable judged from the exported per-loss-term flow, over all T steps
    assert [f.source for f in report.findings] == ["flow"] * len(recurrent)
    assert all(f.loss == f"L({T})" and f.horizon == f.span == T - 1 for f in report.findings)
    if importlib.util.find_spec("matplotlib") is not None:  # one heat-map panel per variable
        titles = [ax.get_title() for ax in viz.flow_map(g).axes if ax.get_title()]
        assert sorted(t.split()[2][0] for t in titles) == recurrent, titles
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
    assert [name for name, _ in figures] == [
        "torch_elman_folded.png", "torch_elman_unfolded.png", "torch_elman_flow.png",
        "torch_lstm_folded.png", "torch_lstm_unfolded.png", "torch_lstm_flow.png"]
    assert all("diagnose: healthy" in caption for name, caption in figures if "flow" in name)
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
    fig = viz.gradient_chart(g, str(tmp_path / "chart.png"))
    assert fig.axes and os.path.getsize(tmp_path / "chart.png") > 1000


def test_no_backward_gives_a_graph_without_gradients() -> None:
    model, x, y = make("gru_cell", 19)
    with tgt.record(model) as rec:
        model(x, y)
    g = rec.graph()
    assert all(n["grad_norm"] is None for n in g.nodes)
    assert all(e["grad_norm"] is None for e in g.edges)
    assert "digraph" in viz.folded(g).source


def _torch_twin(m, x: "np.ndarray", y: "np.ndarray") -> Graph:
    """The seed's Elman RNN written in torch with the weights of tinygraph's ``nn.RNN`` `m`
    (one-hot x(t) @ Uᵀ is U's column x(t), as tinygraph's embedding reads it), recorded."""
    import torch.nn.functional as F
    p = {k: torch.tensor(v.data, requires_grad=True)
         for k, v in (("U", m.cell.U), ("W", m.cell.W), ("b", m.cell.b), ("V", m.V),
                      ("c", m.c))}
    Bn, Tn = x.shape
    onehot = F.one_hot(torch.as_tensor(x), m.cell.U.shape[1]).double()
    with tgt.record(p) as rec:
        h = torch.zeros(Bn, m.cell.W.shape[0], dtype=torch.float64)
        losses = []
        for t in range(Tn):
            with tgt.step(t + 1):
                h = torch.tanh(p["b"] + h @ p["W"].T + onehot[:, t] @ p["U"].T)
                o = p["c"] + h @ p["V"].T
                losses.append(F.cross_entropy(o, torch.as_tensor(y[:, t]), reduction="sum"))
        torch.stack(losses).sum().backward()
    return rec.graph()


@pytest.mark.parametrize("T,scale,verdict", [(6, 1.0, "healthy"), (40, 0.6, "vanishing"),
                                             (30, 6.0, "exploding")])
def test_flow_equals_tinygraphs_on_the_same_elman(T: int, scale: float, verdict: str) -> None:
    """The adapter's F[τ′, t], spectra and verdict against an independent engine: tg.flow on
    the same Elman RNN (same weights, inputs, targets) built in tinygraph."""
    import numpy as np
    import flow_graphs as fg
    ref, f, m = fg.elman(T=T, scale=scale, seed=T)
    g = _torch_twin(m, *m.inputs)
    (got,) = g.attrs["flow"]["variables"]
    want = f["h"]
    assert got["name"] == "h" and got["steps"] == list(range(1, T + 1))
    assert got["loss_steps"] == list(range(1, T + 1))
    np.testing.assert_allclose(got["F"], want.F, rtol=1e-8, atol=1e-300)
    assert np.count_nonzero(np.array(got["F"])) == T * (T + 1) // 2  # L(τ′) reads h(t ≤ τ′)
    for key in ("sigma", "sigma_window", "saturation"):
        np.testing.assert_allclose(got[key], getattr(want, key), rtol=1e-8, equal_nan=True)
    assert got["rho"] == pytest.approx(want.rho, rel=1e-12) and got["weight"] == "W"
    G = g.to_networkx()
    assert [G.nodes[n]["name"] for n in got["nodes"]] == ["h"] * T
    assert [G.nodes[n]["name"] for n in got["loss_nodes"]] == ["L"] * T
    r, r_ref = viz.diagnose(g), viz.diagnose(ref)
    assert r.verdict == r_ref.verdict == verdict
    (fd,), (fd_ref,) = r.findings, r_ref.findings
    assert (fd.source, fd.horizon, fd.span) == ("flow", fd_ref.horizon, fd_ref.span)


def test_flow_option_and_its_limit() -> None:
    """flow=False exports none; the default skips recordings longer than MAX_STEPS steps and
    says so; a loss over all steps at once has no terms to tell apart, and the notes say so."""
    from tinygraph.adapters import torch_flow
    model, rec, g = recorded("elman", 21)
    assert "flow" in g.attrs and any("per-loss-term flow of" in n for n in g.attrs["notes"])
    model, x, y = make("elman", 21)
    with tgt.record(model) as rec:
        model(x, y).backward()
    assert "flow" not in rec.graph(flow=False).attrs
    old = torch_flow.MAX_STEPS
    try:
        torch_flow.MAX_STEPS = T - 1
        model, rec, g = recorded("elman", 21)
        assert "flow" not in g.attrs
        assert any(f"more than {T - 1} steps" in n for n in g.attrs["notes"])
    finally:
        torch_flow.MAX_STEPS = old
    model = nn.RNN(D, H, batch_first=True).double()
    head = nn.Linear(H, K).double()
    with tgt.record({"rnn": model, "out": head}) as rec:
        hs, _ = model(x)
        F_ = nn.functional.cross_entropy(head(hs).reshape(-1, K), y.reshape(-1))
        F_.backward()
    g = rec.graph()
    assert "flow" not in g.attrs
    assert any("no per-step loss terms" in n for n in g.attrs["notes"])
    assert viz.diagnose(g).verdict == "undetermined"


def test_large_jacobians_are_skipped_by_default() -> None:
    """The spectra need (steps x batch x H x H) numbers: past MAX_JACOBIAN only F is exported
    (sigma NaN), and the note says so; F itself is unchanged."""
    import numpy as np
    from tinygraph.adapters import torch_flow
    model, rec, g = recorded("elman", 22)
    full = g.attrs["flow"]["variables"][0]
    old = torch_flow.MAX_JACOBIAN
    try:
        torch_flow.MAX_JACOBIAN = T * B * H * H - 1
        model, rec, g = recorded("elman", 22)
    finally:
        torch_flow.MAX_JACOBIAN = old
    (v,) = g.attrs["flow"]["variables"]
    assert np.isnan(v["sigma"]).all() and not np.isnan(full["sigma"][1:]).any()
    assert v["F"] == full["F"]
    assert any("Jacobian spectra of elman/h skipped" in n for n in g.attrs["notes"])
    assert viz.diagnose(g).verdict == viz.diagnose(recorded("elman", 22)[2]).verdict
