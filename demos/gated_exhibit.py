"""Gated cells in the gallery: vanilla RNN vs LSTM vs GRU on recall-the-first-symbol.

Flow: tinygraph.tasks.compare_recall trains the three on the same data and budget -> one short
held-out sequence per model is recorded with ``backward(keep_grads=True)`` -> ``tg.trace`` ->
viz.folded / viz.unfolded -> PNG files of the LSTM and the GRU; `build` returns the numbers
(held-out accuracy per model at the trained lag k and at 2k and 4k) and the traced graphs, so
the gallery can add the gradient-flow views beside them.

The pictures show a short sequence (a symbol and 4 distractors) so every step stays readable;
the accuracies are measured on 500 held-out sequences per lag.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import viz

import tinygraph as tg
from tinygraph import data as D
from tinygraph import tasks

from . import vanishing

DRAWN = ("LSTM", "GRU")


@dataclass
class GatedExhibit:
    """What `build` returns.

    Attributes
    ----------
    k : int
        The lag trained on (k distractors after the symbol).
    accuracy : dict
        ``{arch: {lag: held-out accuracy}}`` for arch in RNN, LSTM, GRU and lag in k, 2k, 4k.
    chance : float
    seconds : dict
        Training time per arch.
    keep_bias : float
        The keep-gate bias the gated cells started with (see `tinygraph.tasks.open_keep_gate`).
    graphs : dict
        ``{arch: traced graph}`` of one short held-out sequence, gradients kept.
    flows : dict
        ``{arch: traced graph}`` of held-out sequences at the trained lag k, with the flow of
        the loss to every state exported (``tg.flow`` -> ``tg.trace(loss, flow=...)``): what
        viz.flow_map and viz.diagnose read.
    files : list of str
        The PNGs written (folded and unfolded, LSTM and GRU).
    """

    k: int
    accuracy: dict
    chance: float
    seconds: dict
    keep_bias: float
    graphs: dict = field(default_factory=dict)
    flows: dict = field(default_factory=dict)
    files: list = field(default_factory=list)

    def verdict(self) -> str:
        """One line per model: accuracy at each lag beside chance."""
        lags = sorted(next(iter(self.accuracy.values())))
        return "\n".join(f"{a}: " + ", ".join(f"lag {lag}: {acc[lag]:.3f}" for lag in lags)
                         + f" (chance {self.chance:.2f})" for a, acc in self.accuracy.items())


def record(model: Any, x: Any, y: Any) -> Any:
    """Cross-entropy of the last output on (x, y), backward with per-node gradients, traced."""
    loss = tg.cross_entropy(model(x).last, y).named("L")
    loss.backward(keep_grads=True)
    return tg.trace(loss)


def build(out: str | None = None, steps: int = 300, seed: int = 0, k: int = 15,
          drawn_lag: int = 4, flow_batch: int = 8) -> GatedExhibit:
    """Train RNN, LSTM and GRU on recall-the-first-symbol and draw the gated ones.

    Parameters
    ----------
    out : str, optional
        Folder for ``lstm_folded.png``, ``lstm_unfolded.png``, ``gru_folded.png``,
        ``gru_unfolded.png``; None writes nothing.
    steps, seed, k :
        Training budget, seed and trained lag (`tinygraph.tasks.train_recall`).
    drawn_lag : int
        Distractors in the recorded (drawn) sequence.
    flow_batch : int
        Held-out sequences at lag k recorded with their gradient flow (``flows``).

    Returns
    -------
    GatedExhibit

    Examples
    --------
    >>> ex = build("out")                                   # doctest: +SKIP
    >>> print(ex.verdict())                                 # doctest: +SKIP
    RNN: lag 15: 0.512, lag 30: 0.000, lag 60: 0.000 (chance 0.25)
    """
    results = tasks.compare_recall(steps=steps, seed=seed, k=k)
    d = tasks.make_recall_data(seed, k)
    x, y = D.recall_first(1, drawn_lag, d["K"], d["vocab"] - d["K"], seed=seed + 7)
    ex = GatedExhibit(k, {a: r.extra["accuracy_by_lag"] for a, r in results.items()},
                      1.0 / d["K"], {a: r.seconds for a, r in results.items()},
                      results["LSTM"].extra["keep_bias"])
    xk, yk = D.recall_first(flow_batch, k, d["K"], d["vocab"] - d["K"], seed=seed + 11)
    for arch, r in results.items():
        ex.graphs[arch] = record(r.model, x, y)
        ex.flows[arch] = vanishing.record_run(r.model, xk, yk)
    if out is not None:
        os.makedirs(out, exist_ok=True)
        for arch in DRAWN:
            for view, draw in (("folded", viz.folded), ("unfolded", viz.unfolded)):
                path = os.path.join(out, f"{arch.lower()}_{view}.png")
                viz.render(draw(ex.graphs[arch]), path)
                dot = os.path.splitext(path)[0] + ".dot"       # written beside by render
                if os.path.exists(dot):
                    os.remove(dot)
                ex.files.append(path)
    return ex


if __name__ == "__main__":
    import sys
    result = build(sys.argv[1] if len(sys.argv) > 1 else "out")
    print(result.verdict())
    print("\n".join(result.files))
