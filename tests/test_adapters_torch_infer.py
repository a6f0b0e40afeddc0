"""tinygraph.adapters.torch_infer: steps, the book's names and parameter letters on torch graphs."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import torch.nn as nn  # noqa: E402

import viz  # noqa: E402
from tinygraph.adapters import torch as tgt  # noqa: E402
from torch_models import ARCHS, B, D, H, T, one_thread, recorded  # noqa: E402,F401 (one_thread: autouse)


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


def test_elman_variable_edges_carry_the_books_letters() -> None:
    model, rec, g = recorded("elman", 6)
    V = viz.variable_level(g)
    labels = {(V.nodes[u]["name"], V.nodes[v]["name"]): d["label"] for u, v, d in V.edges(data=True)}
    assert labels[("x", "h")] == "U"
    assert labels[("h", "h")] == "W"
    assert labels[("h", "o")] == "V"


def test_steps_of_a_cell_loop_and_the_total_outside_them() -> None:
    model, rec, g = recorded("gru_cell", 11)
    ls = sorted((n["step"] is None, n["step"]) for n in g.nodes if n["op"] == "cross_entropy")
    assert [s for _, s in ls] == list(range(1, T + 1))
    stack = [n for n in g.nodes if n["op"] == "stack"]
    assert stack and all(n["step"] is None for n in stack)


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


def test_a_hand_loop_without_step_stays_untagged() -> None:
    torch.manual_seed(21)
    W = torch.randn(H, H, dtype=torch.float64, requires_grad=True)
    x = torch.randn(B, T, H, dtype=torch.float64)
    with tgt.record({"W": W}) as rec:
        h = torch.zeros(B, H, dtype=torch.float64)
        for t in range(T):
            h = torch.tanh(x[:, t] + h @ W)
        h.sum().backward()
    g = rec.graph()
    assert all(n["step"] is None for n in g.nodes)  # repetition is for viz to infer


def test_an_unbatched_cell_names_its_output_once() -> None:
    torch.manual_seed(22)
    cell = nn.LSTMCell(D, H).double()
    with tgt.record(cell) as rec:
        h = c = torch.zeros(H, dtype=torch.float64)
        for t in range(T):
            h, c = cell(torch.randn(D, dtype=torch.float64), (h, c))
        (h.sum() + c.sum()).backward()
    g = rec.graph()
    assert sorted(n["step"] for n in g.nodes if n["name"] == "h") == list(range(1, T + 1))
    assert sorted(n["step"] for n in g.nodes if n["name"] == "c") == list(range(1, T + 1))
