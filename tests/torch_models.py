"""Torch models the adapter tests record (imported after ``pytest.importorskip("torch")``).

The book's Elman RNN written by hand, nn.RNNCell / LSTMCell / GRUCell loops, and the fused
nn.RNN / LSTM / GRU, all in float64 so comparisons with torch's own gradients are exact.
"""
from __future__ import annotations

import os
import shutil

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from tinygraph.adapters import torch as tgt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
D, H, K, B, T = 3, 4, 3, 2, 5
ARCHS = ["elman", "rnn_cell", "lstm_cell", "gru_cell", "rnn", "lstm", "gru"]
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
    """nn.RNN / LSTM / GRU in one call, a Linear head and a loss term L(t) per step (read from
    the fused output), so the per-loss-term flow can be told apart."""

    def __init__(self, kind: str, layers: int = 1, bidirectional: bool = False) -> None:
        super().__init__()
        cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[kind]
        self.rnn = cls(D, H, num_layers=layers, bidirectional=bidirectional,
                       batch_first=True).double()
        self.out = nn.Linear(H * (2 if bidirectional else 1), K).double()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        hs, _ = self.rnn(x)
        return torch.stack([F.cross_entropy(self.out(hs[:, t]), y[:, t])
                            for t in range(hs.shape[1])]).sum()


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
