"""Tests of tinygraph.adapters.torch: PyTorch recorded into the schema, drawn by viz.

The references are torch's own: ``.grad`` of an unrecorded run (the adapter must not change it),
and for the shadow cell loops an explicit cell loop written with torch (independent of the
adapter). Skipped when torch is not installed.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
nx = pytest.importorskip("networkx")

import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import viz  # noqa: E402
from tinygraph.adapters import torch as tgt  # noqa: E402
from tinygraph.export import NODE_KEYS, Graph  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
D, H, K, B, T = 3, 4, 3, 2, 5
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny ops: torch's thread pool only adds contention on a shared machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


class Elman(nn.Module):
    """The book's Elman RNN written by hand, with tgt.step(t) tags."""

    def __init__(self) -> None:
        super().__init__()
        self.U = nn.Parameter(torch.randn(H, D, dtype=torch.float64) * 0.5)
        self.W = nn.Parameter(torch.randn(H, H, dtype=torch.float64) * 0.5)
        self.b = nn.Parameter(torch.randn(H, dtype=torch.float64) * 0.1)
        self.V = nn.Parameter(torch.randn(K, H, dtype=torch.float64) * 0.5)
        self.c = nn.Parameter(torch.randn(K, dtype=torch.float64) * 0.1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(x.shape[0], H, dtype=x.dtype)
        losses = []
        for t in range(x.shape[1]):
            with tgt.step(t + 1):
                h = torch.tanh(self.b + h @ self.W.T + x[:, t] @ self.U.T)
                o = self.c + h @ self.V.T
                losses.append(F.cross_entropy(o, y[:, t]))
        return torch.stack(losses).sum()


class CellLoop(nn.Module):
    """nn.RNNCell / LSTMCell / GRUCell called once per step (no step tags)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        cls = {"rnn_cell": nn.RNNCell, "lstm_cell": nn.LSTMCell, "gru_cell": nn.GRUCell}[kind]
        self.cell = cls(D, H).double()
        self.out = nn.Linear(H, K).double()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(x.shape[0], H, dtype=x.dtype)
        c = torch.zeros_like(h)
        losses = []
        for t in range(x.shape[1]):
            if self.kind == "lstm_cell":
                h, c = self.cell(x[:, t], (h, c))
            else:
                h = self.cell(x[:, t], h)
            losses.append(F.cross_entropy(self.out(h), y[:, t]))
        return torch.stack(losses).sum()


class Fused(nn.Module):
    """nn.RNN / LSTM / GRU in one call, a Linear head over all steps."""

    def __init__(self, kind: str, layers: int = 1, bidirectional: bool = False) -> None:
        super().__init__()
        cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[kind]
        self.rnn = cls(D, H, num_layers=layers, bidirectional=bidirectional,
                       batch_first=True).double()
        self.out = nn.Linear(H * (2 if bidirectional else 1), K).double()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        hs, _ = self.rnn(x)
        return F.cross_entropy(self.out(hs).reshape(-1, K), y.reshape(-1))


ARCHS = ["elman", "rnn_cell", "lstm_cell", "gru_cell", "rnn", "lstm", "gru"]


def make(arch: str, seed: int) -> tuple:
    torch.manual_seed(seed)
    if arch == "elman":
        model = Elman()
    elif arch.endswith("_cell"):
        model = CellLoop(arch)
    else:
        model = Fused(arch)
    x = torch.randn(B, T, D, dtype=torch.float64)
    y = torch.randint(0, K, (B, T))
    return model, x, y


def recorded(arch: str, seed: int = 0) -> tuple:
    model, x, y = make(arch, seed)
    with tgt.record(model) as rec:
        loss = model(x, y)
        loss.backward()
    return model, rec, rec.graph()


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
def test_book_names_and_steps(arch: str) -> None:
    model, rec, g = recorded(arch, 4)
    names = {n["name"] for n in g.nodes if n["kind"] != "param"}
    assert {"x", "h", "o", "L", "y"} <= names
    params = {n["name"] for n in g.nodes if n["kind"] == "param"}
    assert {"U", "W", "V", "c"} <= params
    hs = sorted(n["step"] for n in g.nodes if n["name"] == "h" and n["kind"] == "op")
    assert hs == list(range(1, T + 1))
    h0 = [n for n in g.nodes if n["name"] == "h" and n["op"] == "leaf"]
    assert [n["step"] for n in h0] == [0]
    out = g.nodes[g.attrs["output"]]
    assert out["name"] == "L" and out["step"] is None and out["grad_norm"] == 1.0


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


def test_elman_variable_edges_carry_the_books_letters() -> None:
    model, rec, g = recorded("elman", 6)
    V = viz.variable_level(g)
    labels = {(V.nodes[u]["name"], V.nodes[v]["name"]): d["label"] for u, v, d in V.edges(data=True)}
    assert labels[("x", "h")] == "U"
    assert labels[("h", "h")] == "W"
    assert labels[("h", "o")] == "V"


def test_edge_gradients_add_up_to_torch_grad() -> None:
    """The VJP of each op along its edges: W's edges into the steps sum to W.grad."""
    model, rec, g = recorded("rnn_cell", 7)
    w = next(i for i, n in enumerate(rec.nodes) if n.kind == "param" and n.key.endswith("weight_hh"))
    parts = [t for (src, _), t in rec.edge_grads.items() if src == w]
    assert len(parts) == T
    assert torch.allclose(sum(parts), model.cell.weight_hh.grad, rtol=0, atol=1e-13)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_fused_shadow_gradients_match_an_explicit_cell_loop(kind: str) -> None:
    """‖∂L/∂h(t)‖ of the re-run cell loop equals that of a torch cell loop with the same weights."""
    model, rec, g = recorded(kind, 8)
    got = sorted((n["step"], n["grad_norm"]) for n in g.nodes
                 if n["name"] == "h" and n["kind"] == "op")
    torch.manual_seed(8)
    _, x, y = make(kind, 8)
    cls = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}[kind]
    cell = cls(D, H).double()
    with torch.no_grad():
        cell.weight_ih.copy_(model.rnn.weight_ih_l0)
        cell.weight_hh.copy_(model.rnn.weight_hh_l0)
        cell.bias_ih.copy_(model.rnn.bias_ih_l0)
        cell.bias_hh.copy_(model.rnn.bias_hh_l0)
    h = torch.zeros(B, H, dtype=torch.float64)
    c = torch.zeros_like(h)
    hs = []
    for t in range(T):
        if kind == "lstm":
            h, c = cell(x[:, t], (h, c))
        else:
            h = cell(x[:, t], h)
        h.retain_grad()
        hs.append(h)
    out = model.out(torch.stack(hs, 1))
    F.cross_entropy(out.reshape(-1, K), y.reshape(-1)).backward()
    want = [(t + 1, float(hh.grad.norm())) for t, hh in enumerate(hs)]
    assert [s for s, _ in got] == [s for s, _ in want]
    assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-9)
    assert any("cell loop" in note for note in g.attrs["notes"])


def test_fused_two_layers_bidirectional() -> None:
    torch.manual_seed(9)
    model = Fused("lstm", layers=2, bidirectional=True)
    x = torch.randn(B, T, D, dtype=torch.float64)
    y = torch.randint(0, K, (B, T))
    with tgt.record(model) as rec:
        model(x, y).backward()
    g = rec.graph()
    scopes = {n["scope"] for n in g.nodes if n["name"] in ("h", "g")}
    assert scopes == {"fused/rnn/layer1/fwd", "fused/rnn/layer1/bwd", "fused/rnn/layer2/fwd",
                      "fused/rnn/layer2/bwd"}
    params = {n["name"] for n in g.nodes if n["kind"] == "param"}
    assert {"U", "W", "U2", "W2"} <= params
    loops = {viz.fold(g).nodes[n]["scope"] for n in nx.nodes_with_selfloops(viz.fold(g))}
    assert "fused/rnn/layer1/bwd" in loops
    got = {n["name"] + n["scope"]: n["grad_norm"] for n in g.nodes if n["kind"] == "param"}
    assert sorted(got.values()) == pytest.approx(
        sorted(float(p.grad.norm()) for p in model.parameters()), rel=1e-12)


def test_fused_as_one_node() -> None:
    model, x, y = make("lstm", 10)
    with tgt.record(model, fused="node") as rec:
        model(x, y).backward()
    g = rec.graph()
    assert [n["op"] for n in g.nodes].count("lstm") >= 1
    assert not any(n["name"] == "h" for n in g.nodes)


def test_steps_of_a_cell_loop_and_the_total_outside_them() -> None:
    model, rec, g = recorded("gru_cell", 11)
    ls = sorted((n["step"] is None, n["step"]) for n in g.nodes if n["op"] == "cross_entropy")
    assert [s for _, s in ls] == list(range(1, T + 1))
    stack = [n for n in g.nodes if n["op"] == "stack"]
    assert stack and all(n["step"] is None for n in stack)


def test_dropout_is_replayed_with_the_same_mask() -> None:
    torch.manual_seed(12)
    lin = nn.Linear(D, K).double()
    x = torch.randn(B, D, dtype=torch.float64)
    with tgt.record(lin) as rec:
        out = F.dropout(lin(x), p=0.5, training=True)
        out.pow(2).sum().backward()
    rec.graph()
    w = next(i for i, n in enumerate(rec.nodes) if n.kind == "param" and n.key.endswith("weight"))
    parts = [t for (src, _), t in rec.edge_grads.items() if src == w]
    assert torch.allclose(sum(parts), lin.weight.grad, rtol=0, atol=1e-13)


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


def test_in_place_ops_are_recorded_and_replayed() -> None:
    torch.manual_seed(14)
    U = torch.randn(H, D, dtype=torch.float64, requires_grad=True)
    W = torch.randn(H, H, dtype=torch.float64, requires_grad=True)
    x = torch.randn(B, T, D, dtype=torch.float64)
    with tgt.record({"U": U, "W": W}) as rec:
        h = torch.zeros(B, H, dtype=torch.float64)
        for t in range(T):
            with tgt.step(t + 1):
                a = x[:, t] @ U.T
                a += h @ W.T                      # in place: the node reads a's old value
                h = torch.tanh(a)
        (h ** 2).sum().backward()
    g = rec.graph()
    w = next(i for i, n in enumerate(rec.nodes) if n.key == "W")
    total = sum(t for (src, _), t in rec.edge_grads.items() if src == w)
    assert torch.allclose(total, W.grad, rtol=0, atol=1e-12)
    assert sorted(n["step"] for n in g.nodes if n["name"] == "h") == list(range(T + 1))


class UserCell(nn.Module):
    """A cell written with two Linear layers: their roles give U, b and W, b."""

    def __init__(self) -> None:
        super().__init__()
        self.i2h = nn.Linear(D, H).double()
        self.h2h = nn.Linear(H, H).double()

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.i2h(x) + self.h2h(h))


def test_linear_roles_give_the_books_letters() -> None:
    torch.manual_seed(15)
    emb, cell, head = nn.Embedding(7, D).double(), UserCell(), nn.Linear(H, 7).double()
    model = nn.ModuleDict({"emb": emb, "cell": cell, "head": head})
    ids = torch.randint(0, 7, (B, T + 1))
    with tgt.record(model) as rec:
        h = torch.zeros(B, H, dtype=torch.float64)
        loss = 0
        for t in range(T):
            h = cell(emb(ids[:, t]), h)
            loss = loss + nn.CrossEntropyLoss()(head(h), ids[:, t + 1])
        loss.backward()
    g = rec.graph()
    labels = {n["scope"].split("/")[-1] + ":" + n["name"] for n in g.nodes if n["kind"] == "param"}
    assert labels == {"emb:E", "i2h:U", "i2h:b", "h2h:W", "h2h:b", "head:V", "head:c"}
    V = viz.variable_level(g)
    got = {(V.nodes[u]["name"], V.nodes[v]["name"], d["label"]) for u, v, d in V.edges(data=True)}
    assert {("x", "h", "U"), ("h", "h", "W"), ("h", "o", "V")} <= got
    assert sorted(n["step"] for n in g.nodes if n["name"] == "x") == list(range(1, T + 1))


def test_fused_float32_two_layers_is_checked_against_torch() -> None:
    torch.manual_seed(16)
    lstm = nn.LSTM(D, 8, num_layers=2)
    x = torch.randn(40, B, D)
    with tgt.record(lstm) as rec:
        out, (hn, cn) = lstm(x)
        (out.sum() + hn.sum()).backward()
    g = rec.graph()
    note = next(n for n in g.attrs["notes"] if "cell loop" in n)
    diff = float(re.search(r"difference\| ([0-9.e+-]+)", note).group(1))
    assert diff <= 1e-6
    got = sorted(n["grad_norm"] for n in g.nodes if n["kind"] == "param")
    assert got == pytest.approx(sorted(float(p.grad.double().norm()) for p in lstm.parameters()),
                                rel=1e-12)


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
