"""Gallery sections on gradient flow through time: real runs, numbers beside the pictures.

Flow: tinygraph.tasks / demos.vanishing (training) -> ``tg.flow`` + ``tg.trace(loss, flow=...)``
-> viz.flow_map, viz.gradient_chart, viz.diagnose -> PNG files and gallery cards
(demos.gallery.Card: title, blurb, figures, notes) with the numbers as ``.data``.

Three exhibits (issue 9):

- `elman_flow`: the seed's Elman RNN trained on characters, recorded at T = 5 and T = 50 with
  a loss at every step; the heat map of ‖∂L(τ′)/∂h(t)‖ shows where long-range gradient dies.
- `exploding`: an Elman RNN whose W is scaled to a large spectral radius, trained with plain SGD
  with and without ``clip_grad_norm``; the gradient norm and the loss of every update.
- `long_range`: recall the first symbol after T − 1 distractors, for several T; the verdict's
  horizon beside the held-out accuracy.

demos.gallery lists each as a Section of its own (``flow-per-loss-term``, ``long-range``,
``exploding``), where the book has them.
"""
from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

import tinygraph as tg
import viz
from tinygraph import nn, tasks
from tinygraph.optim import SGD, clip_grad_norm

from . import vanishing


def section(title: str, blurb: str, figures: list | None = None, notes: list | None = None,
            data: dict | None = None) -> Any:
    """A gallery card (demos.gallery.Card: what demos.page draws) carrying the numbers behind
    it as ``.data``."""
    from .gallery import Card   # here, not at import: the gallery imports this module
    card = Card(title, blurb, list(figures or []), list(notes or []))
    card.data = dict(data or {})
    return card


def record_chars(model: Any, T: int, start: int = 100, batch: int = 4) -> tuple[Any, Any]:
    """A held-out character window of length T through `model`, a loss L(t) at every step,
    traced with its per-loss-term flow. Returns (graph, tg.flow result)."""
    ids = tasks.make_char_data(0)["test"]
    x = np.stack([ids[start + 37 * b:start + 37 * b + T] for b in range(batch)])
    y = np.stack([ids[start + 37 * b + 1:start + 37 * b + T + 1] for b in range(batch)])
    out, terms = model(x), []
    total = nn.sequence_loss(out.o, y, terms=terms)    # mean over the B x T positions
    W = getattr(getattr(model, "cell", None), "W", None)  # a stacked RNN has none: no ρ(W)
    flow = tg.flow(terms, out.h, weights=W)
    total.backward(keep_grads=True)
    return tg.trace(total, flow=flow), flow


def elman_flow(out: str, steps: int = 400, lengths: tuple = (5, 50),
               model: Any = None) -> Any:
    """The trained Elman RNN at T = 5 and T = 50: flow heat maps, charts and the verdicts
    (`model`: an RNN over the characters to record instead of training one)."""
    if model is None:
        r = tasks.train_elman(steps=steps)
        model = r.model
        trained = (f"trained {steps} steps on characters: held-out {r.metric:.3f} bits/char "
                   f"(unigram {r.chance:.3f})")
    else:
        trained = "the model given, as it is"
    sec = section("Gradient flow per loss term: the Elman RNN at T = 5 and T = 50",
                  "‖∂L(τ′)/∂h(t)‖ for every loss term L(τ′) (rows) and state h(t) (columns), "
                  "log colour; white ticks: where the flow from L(τ′) falls below 1e-3 of its "
                  "value at h(τ′). With a loss at every step the total ‖∂L/∂h(t)‖ hides this.",
                  notes=[trained])
    for T in lengths:
        g, flow = record_chars(model, T)
        g.save(os.path.join(out, f"flow_elman_T{T}.json"))
        viz.flow_map(g, os.path.join(out, f"flow_elman_T{T}_map.png"),
                     title=f"Elman RNN, T = {T}")
        viz.gradient_chart(g, os.path.join(out, f"flow_elman_T{T}_chart.png"),
                           title=f"Elman RNN, T = {T}")
        sec.figures += [(f"flow_elman_T{T}_map.png", f"T = {T}: flow heat map"),
                        (f"flow_elman_T{T}_chart.png", f"T = {T}: gradient through time")]
        report = viz.diagnose(g)
        f = report.findings[0]
        sec.notes.append(f"T = {T} (tg.flow: {flow.sweeps} sweeps, {flow.seconds:.2f} s)\n"
                         f"{report}")
        sec.data[T] = {"verdict": report.verdict, "horizon": f.horizon, "span": f.span,
                       "decay": f.decay, "rho": f.spectra.get("rho"),
                       "sigma": f.spectra.get("sigma"), "seconds": flow.seconds}
    return sec


def exploding(out: str, rho: float = 3.0, steps: int = 150, lr: float = 1.0, T: int = 30,
              clip: float = 5.0) -> Any:
    """W scaled to spectral radius `rho`, trained with SGD with and without clipping."""
    d = tasks.make_char_data(0)
    V = len(d["vocab"])
    runs = {}
    for label, max_norm in (("no clipping", None), (f"clip_grad_norm({clip:g})", clip)):
        model = nn.RNN(V, 32, V, rng=0)
        W = model.cell.W.data
        W *= rho / np.abs(np.linalg.eigvals(W)).max()
        if not runs:
            g, _ = record_chars(model, T, batch=2)
            before = viz.diagnose(g)
            g.save(os.path.join(out, "flow_exploding.json"))
            viz.gradient_chart(g, os.path.join(out, "flow_exploding_chart.png"),
                               title=f"Elman RNN, ρ(W) = {rho:g}, before training")
        opt = SGD(model.parameters(), lr=lr)
        rng = np.random.default_rng(0)
        norms, losses = [], []
        for _ in range(steps):
            x, y = tasks.D.char_windows(d["train"], 16, T, rng)
            opt.zero_grad()
            loss = nn.sequence_loss(model(x).o, y)
            loss.backward()
            total = _grad_norm(model)
            if max_norm is not None:
                clip_grad_norm(model.parameters(), max_norm)
            opt.step()
            norms.append(total)
            losses.append(float(loss.data))
        runs[label] = (norms, losses)
    _plot_runs(runs, os.path.join(out, "flow_exploding_training.png"), rho)
    notes = [str(before)]
    for label, (norms, losses) in runs.items():
        finite = [x for x in losses if np.isfinite(x)]
        notes.append(f"{label}: gradient norm median {np.median(norms):.3g}, max "
                     f"{np.max(norms):.3g}; loss first {losses[0]:.3f}, last "
                     f"{losses[-1]:.3f}, best {min(finite) if finite else float('nan'):.3f}")
    return section(f"Exploding gradients: ρ(W) = {rho:g}, with and without clipping",
                   "W rescaled to a spectral radius above 1; the verdict before training, then "
                   f"{steps} SGD updates (lr {lr:g}) each way: the norm of the full gradient "
                   "before clipping, and the loss.",
                   [("flow_exploding_chart.png", "before training: gradient through time"),
                    ("flow_exploding_training.png", "training with and without clipping")],
                   notes, {"verdict": before.verdict,
                           "runs": {k: {"norms": v[0], "losses": v[1]} for k, v in runs.items()}})


def _grad_norm(model: Any) -> float:
    return float(np.sqrt(sum(float((p.grad ** 2).sum()) for p in model.parameters()
                             if p.grad is not None)))


def _plot_runs(runs: dict, path: str, rho: float) -> None:
    from matplotlib.ticker import MaxNLocator

    from viz.charts import new_figure, save_figure
    fig = new_figure(figsize=(11, 3.8), layout="constrained")
    a, b = fig.subplots(1, 2)
    for (label, (norms, losses)), (ls, mk) in zip(runs.items(), (("-", "o"), ("--", "s"))):
        a.semilogy(range(1, len(norms) + 1), norms, ls=ls, marker=mk, ms=2, label=label)
        b.plot(range(1, len(losses) + 1), losses, ls=ls, marker=mk, ms=2, label=label)
    a.set(title=f"‖∇θ L‖ per update (before clipping), ρ(W) = {rho:g}", xlabel="update",
          ylabel="gradient norm (log)")
    b.set(title="training loss (mean nats per character)", xlabel="update", ylabel="loss")
    for ax in (a, b):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    save_figure(fig, path)


def long_range(out: str, lengths: tuple = (3, 6, 10, 15, 20, 30, 45, 60),
               steps: int = 300) -> Any:
    """Recall the first symbol after T − 1 distractors: accuracy and the verdict's horizon."""
    rows = []
    runs = {}
    for T in lengths:
        run = vanishing.train(T, steps=steps)
        f = viz.diagnose(run.graph).findings[0]
        rows.append((T, run.accuracy, f.horizon, f.span, f.decay))
        runs[T] = run
    longest = runs[lengths[-1]]
    name = f"flow_recall_T{longest.T}"
    longest.graph.save(os.path.join(out, name + ".json"))
    viz.gradient_chart(longest.graph, os.path.join(out, name + "_chart.png"),
                       title=f"recall the first symbol, T = {longest.T}")
    _plot_recall(rows, os.path.join(out, "flow_recall_accuracy.png"))
    table = ["T   needs  horizon  accuracy  factor/step",
             *[f"{T:<4d}{T - 1:>5d}  {h if h < s else f'≥{s}':>7}  {acc:8.3f}  {dec:11.3f}"
               for T, acc, h, s, dec in rows],
             f"chance {1 / vanishing.K:.3f}; 'needs': steps from the loss back to h(1); "
             "'horizon': steps back the flow from L(T) stays above 1e-3 of its local value"]
    return section("A long-range task: recall the first symbol after T − 1 distractors",
                   "the vanilla RNN is trained at each length; where the steps the task needs "
                   "exceed the verdict's horizon, the gradient that would teach it is below "
                   "1e-3 of the local one.",
                   [("flow_recall_accuracy.png", "accuracy and horizon against T"),
                    (name + "_chart.png", f"T = {longest.T}: gradient through time")],
                   ["\n".join(table), str(viz.diagnose(longest.graph))],
                   {"rows": rows})


def _plot_recall(rows: list, path: str) -> None:
    from matplotlib.ticker import MaxNLocator

    from viz.charts import new_figure, save_figure
    fig = new_figure(figsize=(11, 3.8), layout="constrained")
    a, b = fig.subplots(1, 2)
    Ts = [r[0] for r in rows]
    a.plot(Ts, [r[1] for r in rows], marker="o", label="held-out accuracy")
    a.axhline(1 / vanishing.K, color="#999999", ls="--", label=f"chance {1 / vanishing.K:.2f}")
    a.set(title="recall the first symbol", xlabel="sequence length T", ylabel="accuracy",
          ylim=(0, 1.05))
    b.plot(Ts, [r[2] for r in rows], marker="s", ls="-", label="horizon (diagnose)")
    b.plot(Ts, [T - 1 for T in Ts], ls=":", color="#555555", label="steps needed: T − 1")
    b.set(title="effective horizon of the trained RNN", xlabel="sequence length T",
          ylabel="steps")
    for ax in (a, b):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    save_figure(fig, path)


def flow_cost(lengths: tuple = (100, 1000), hidden: int = 32) -> dict:
    """Seconds for ``tg.flow`` on an Elman RNN with a loss at every step (batch 1), beside one
    backward of the total loss: ``{T: {"backward", "F", "F_sweeps", "jacobians",
    "jacobian_sweeps"}}`` (``jacobians`` includes the one sweep of its single loss term)."""
    res = {}
    for T in lengths:
        rng = np.random.default_rng(0)
        m = nn.RNN(8, hidden, 8, rng=0)
        x, y = rng.integers(0, 8, (1, T)), rng.integers(0, 8, (1, T))
        out = m(x)
        terms = []
        for t, ot in enumerate(out.o, 1):
            with tg.step(t):
                terms.append(tg.cross_entropy(ot, y[:, t - 1]).named("L"))
        start = time.perf_counter()
        tg.stack(terms).sum().backward(retain_graph=True)
        back = time.perf_counter() - start
        f1 = tg.flow(terms, out.h, jacobians=False)                 # F: one sweep per term
        f2 = tg.flow(terms[-1:], out.h, weights=m.cell.W)           # + one sweep per unit
        res[T] = {"backward": back, "F": f1.seconds, "F_sweeps": f1.sweeps,
                  "jacobians": f2.seconds, "jacobian_sweeps": f2.sweeps - 1}
    return res
