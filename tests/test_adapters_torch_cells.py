"""tinygraph.adapters.torch_cells: fused cells and nn.RNN / LSTM / GRU drawn as their cell loop.

The reference is an explicit torch cell loop with the same weights (independent of the adapter).
"""
from __future__ import annotations

import re

import pytest

torch = pytest.importorskip("torch")
nx = pytest.importorskip("networkx")

import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import viz  # noqa: E402
from tinygraph.adapters import torch as tgt  # noqa: E402
from torch_models import B, D, Fused, H, K, T, make, one_thread, recorded  # noqa: E402,F401 (one_thread: autouse)


def head_loss(out: nn.Module, hs: list, y: torch.Tensor, head: str) -> torch.Tensor:
    """The loss from the states h(1..T): a head over all steps, per step, or on the last."""
    if head == "all":
        return F.cross_entropy(out(torch.stack(hs, 1)).reshape(-1, K), y.reshape(-1))
    if head == "per_step":
        return sum(F.cross_entropy(out(h), y[:, t]) for t, h in enumerate(hs))
    return F.cross_entropy(out(hs[-1]), y[:, -1])


@pytest.mark.parametrize("head", ["all", "per_step", "last"])
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_fused_shadow_gradients_match_an_explicit_cell_loop(kind: str, head: str) -> None:
    """‖∂L/∂h(t)‖ of the re-run cell loop equals that of a torch cell loop with the same weights.

    ``per_step`` reads ``hs[:, t]`` and ``last`` reads ``h_n[-1]`` of the fused output: each
    is drawn from h(t) itself, so o(t) and L(t) get their steps.
    """
    model, x, y = make(kind, 8)
    with tgt.record(model) as rec:
        hs, hn = model.rnn(x)
        hn = hn[0] if kind == "lstm" else hn
        loss = head_loss(model.out, list(hs.unbind(1)) if head == "per_step" else
                         [hn[-1]] if head == "last" else [hs[:, t] for t in range(T)], y, head)
        loss.backward()
    g = rec.graph()
    got = sorted((n["step"], n["grad_norm"]) for n in g.nodes
                 if n["name"] == "h" and n["kind"] == "op")
    cls = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}[kind]
    cell = cls(D, H).double()
    with torch.no_grad():
        cell.weight_ih.copy_(model.rnn.weight_ih_l0)
        cell.weight_hh.copy_(model.rnn.weight_hh_l0)
        cell.bias_ih.copy_(model.rnn.bias_ih_l0)
        cell.bias_hh.copy_(model.rnn.bias_hh_l0)
    h = torch.zeros(B, H, dtype=torch.float64)
    c = torch.zeros_like(h)
    ref = []
    for t in range(T):
        if kind == "lstm":
            h, c = cell(x[:, t], (h, c))
        else:
            h = cell(x[:, t], h)
        h.retain_grad()
        ref.append(h)
    head_loss(model.out, ref, y, head).backward()
    want = [(t + 1, float(hh.grad.norm())) for t, hh in enumerate(ref)]
    assert [s for s, _ in got] == [s for s, _ in want]
    assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-9)
    assert any("cell loop" in note for note in g.attrs["notes"])
    steps = sorted(n["step"] for n in g.nodes if n["op"] == "cross_entropy")
    assert steps == {"all": [None], "per_step": list(range(1, T + 1)), "last": [T]}[head]


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


def test_fused_float32_two_layers_is_checked_against_torch() -> None:
    torch.manual_seed(16)
    lstm = nn.LSTM(D, 8, num_layers=2)
    x = torch.randn(40, B, D)
    with tgt.record(lstm) as rec:
        out, (hn, cn) = lstm(x)
        (out.sum() + hn.sum()).backward()
    g = rec.graph()
    # out and h_n are the re-run loop's nodes (not stray leaves torch handed back)
    assert not [n for n in g.nodes if n["op"] == "leaf" and n["kind"] != "param"
                and n["requires_grad"]]
    assert [n["shape"] for n in g.nodes if n["op"] == "stack"] == [[40, B, 8], [2, B, 8]]
    note = next(n for n in g.attrs["notes"] if "cell loop" in n)
    diff = float(re.search(r"difference\| ([0-9.e+-]+)", note).group(1))
    assert diff <= 1e-6
    got = sorted(n["grad_norm"] for n in g.nodes if n["kind"] == "param")
    assert got == pytest.approx(sorted(float(p.grad.double().norm()) for p in lstm.parameters()),
                                rel=1e-12)


def test_fused_as_one_node() -> None:
    model, x, y = make("lstm", 10)
    with tgt.record(model, fused="node") as rec:
        model(x, y).backward()
    g = rec.graph()
    assert [n["op"] for n in g.nodes].count("lstm") >= 1
    assert not any(n["name"] == "h" for n in g.nodes)


def test_a_re_run_that_differs_from_torch_is_refused() -> None:
    model, x, y = make("gru", 20)
    with tgt.record(model) as rec:
        hs, _ = model.rnn(x)
        hs.sum().backward()
    with torch.no_grad():
        hs.add_(1e-3)  # as if the fused kernel computed something else
    with pytest.raises(ValueError, match=r"nn.GRU at .*differs.*fused='node'"):
        rec.graph(output=hs)
