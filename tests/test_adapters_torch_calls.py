"""tinygraph.adapters.torch_calls: each op replayed for its edge gradients, against torch's .grad."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from tinygraph.adapters import torch as tgt  # noqa: E402
from torch_models import B, D, H, K, T, one_thread, recorded  # noqa: E402,F401 (one_thread: autouse)

def test_edge_gradients_add_up_to_torch_grad() -> None:
    """The VJP of each op along its edges: W's edges into the steps sum to W.grad."""
    model, rec, g = recorded("rnn_cell", 7)
    w = next(i for i, n in enumerate(rec.nodes) if n.kind == "param" and n.key.endswith("weight_hh"))
    parts = [t for (src, _), t in rec.edge_grads.items() if src == w]
    assert len(parts) == T
    assert torch.allclose(sum(parts), model.cell.weight_hh.grad, rtol=0, atol=1e-13)

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
