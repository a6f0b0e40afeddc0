"""The PyTorch exhibit: a torch Elman loop and an nn.LSTM, recorded and drawn like the book's.

Flow: torch models (written here) -> tinygraph.adapters.torch.record -> tinygraph.Graph (with
the per-loss-term flow the adapter exports) -> viz figures (PNG: folded, unfolded with gradient
norms, the flow heat map with `viz.diagnose`'s verdict in its caption) in a folder. torch is
optional: `write` raises ImportError with the install line when it is missing (the gallery can
skip the exhibit then). ``python -m demos.torch_exhibit out``
"""
from __future__ import annotations

import os
import sys
from typing import Any

import viz

D, H, K, B, T = 3, 8, 4, 2, 6


def elman_graph(seed: int = 0) -> Any:
    """A hand-written torch Elman RNN (eq. 10.8-10.11) over T steps, recorded after backward.

    Returns
    -------
    tinygraph.Graph
    """
    import torch
    import torch.nn.functional as F
    from tinygraph.adapters import torch as tgt

    g = torch.Generator().manual_seed(seed)
    params = {k: (torch.randn(*shape, generator=g) * 0.4).requires_grad_()
              for k, shape in (("U", (H, D)), ("W", (H, H)), ("b", (H,)), ("V", (K, H)),
                               ("c", (K,)))}
    U, W, b, V, c = (params[k] for k in "UWbVc")
    x = torch.randn(B, T, D, generator=g)
    y = torch.randint(0, K, (B, T), generator=g)
    with tgt.record(params) as rec:
        h = torch.zeros(B, H)                                   # h(0)
        losses = []
        for t in range(1, T + 1):
            with tgt.step(t):
                h = torch.tanh(b + h @ W.T + x[:, t - 1] @ U.T)  # h(t)
                o = c + h @ V.T                                   # o(t)
                losses.append(F.cross_entropy(o, y[:, t - 1]))    # L(t)
        loss = torch.stack(losses).sum()                          # L
        loss.backward()
    return rec.graph()


def lstm_graph(seed: int = 0) -> Any:
    """``nn.LSTM`` (one fused call) with a Linear head per step, recorded as its cell loop.

    Returns
    -------
    tinygraph.Graph
    """
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from tinygraph.adapters import torch as tgt

    torch.manual_seed(seed)

    class Tagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(D, H, batch_first=True)
            self.out = nn.Linear(H, K)

        def forward(self, x: Any, y: Any) -> Any:
            hs, _ = self.lstm(x)                                  # (B, T, H)
            losses = [F.cross_entropy(self.out(h), y[:, t])       # o(t), L(t) from h(t)
                      for t, h in enumerate(hs.unbind(1))]
            return torch.stack(losses).sum()

    model = Tagger()
    x = torch.randn(B, T, D)
    y = torch.randint(0, K, (B, T))
    with tgt.record(model) as rec:
        model(x, y).backward()
    return rec.graph()


def write(out: str) -> list[tuple[str, str]]:
    """Render the exhibit's figures as PNG files into `out`.

    Parameters
    ----------
    out : str
        Folder (made if missing).

    Returns
    -------
    list of (file name, caption)

    Raises
    ------
    ImportError
        When torch is not installed (the message says how to install it).
    """
    os.makedirs(out, exist_ok=True)
    figures = []
    for key, graph, what in (("torch_elman", elman_graph(), "torch Elman loop"),
                             ("torch_lstm", lstm_graph(), "torch nn.LSTM")):
        graph.save(os.path.join(out, f"{key}.json"))
        for view, fig, caption in (
                ("folded", viz.folded(graph), f"{what}, folded"),
                ("unfolded", viz.unfolded(graph, max_steps=6, grads=True),
                 f"{what}, unfolded, with ‖∂L/∂·‖")):
            name = f"{key}_{view}.png"
            viz.render(fig, os.path.join(out, name))
            figures.append((name, caption))
        report = viz.diagnose(graph)
        name = f"{key}_flow.png"
        fig = viz.flow_map(graph, os.path.join(out, name), title=f"{what}: ‖∂L(τ′)/∂·(t)‖")
        fig.clear()  # made without pyplot: nothing else holds it
        figures.append((name, f"{what}, per-loss-term flow; diagnose: {report.verdict} "
                              f"({'; '.join(report.reasons)})"))
    return figures

if __name__ == "__main__":
    for name, caption in write(sys.argv[1] if len(sys.argv) > 1 else "out"):
        print(f"{name}: {caption}")
