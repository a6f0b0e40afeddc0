"""Write the gallery: every exhibit's figures, the vanishing-gradient demo, then index.html.

Flow: demos.exhibits / demos.vanishing (trained models, traced graphs) -> viz (figures, charts,
diagnose) -> files in ``out/`` -> demos.page (index.html).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable

import viz

from . import exhibits, page, vanishing


@dataclass
class Card:
    """One section of index.html: a title, a line of explanation, figures, and notes."""

    title: str
    blurb: str
    figures: list = field(default_factory=list)   # (file name, caption)
    notes: list = field(default_factory=list)


def _draw(out: str, name: str, fig) -> str:
    """SVG for the page, PNG beside it for quick looks; returns the SVG's file name."""
    viz.render(fig, os.path.join(out, name + ".svg"))
    viz.render(fig, os.path.join(out, name + ".png"))
    return name + ".svg"


def exhibit_card(out: str, ex: exhibits.Exhibit) -> Card:
    """Folded, unfolded, gradient overlays and chart of one trained architecture."""
    g, k = ex.graph, ex.key
    g.save(os.path.join(out, f"{k}.json"))
    card = Card(f"{ex.title} ({ex.figure})", ex.blurb, notes=[ex.score])
    card.figures.append((_draw(out, f"{k}_folded", viz.folded(g)), "folded"))
    card.figures.append((_draw(out, f"{k}_unfolded", viz.unfolded(g, max_steps=8)), "unfolded"))
    if ex.op_level:
        card.figures.append((_draw(out, f"{k}_folded_op", viz.folded(g, level="op")),
                             "folded, every op"))
        card.figures.append((_draw(out, f"{k}_unfolded_op",
                                   viz.unfolded(g, level="op", max_steps=4)),
                             "unfolded, every op (first and last steps)"))
    card.figures.append((_draw(out, f"{k}_grads_folded", viz.folded(g, grads=True)),
                         "gradient norms per role (min · median · max over steps)"))
    card.figures.append((_draw(out, f"{k}_grads_unfolded",
                               viz.unfolded(g, max_steps=8, grads=True)),
                         "‖∂L/∂·‖ on every node and edge"))
    try:
        viz.gradient_chart(g, os.path.join(out, f"{k}_chart.png"), title=ex.title)
        card.figures.append((f"{k}_chart.png", "gradient through time"))
    except ValueError as exc:  # no recurrent variable carries a gradient norm
        card.notes.append(f"no chart: {exc}")
    report = viz.diagnose(g)
    card.notes.append(str(report))
    return card


def graphical_card(out: str, ex: exhibits.Exhibit) -> Card:
    fig = viz.graphical_model(ex.graph, steps=5)
    return Card("Recurrent networks as directed graphical models (figs. 10.7-10.8)",
                "the dependencies among the outputs y(1..5) read off the recorded Elman graph: "
                "fully connected (a table of k^τ - 1 numbers) versus through h(t) (θ shared by "
                "every step).", [(_draw(out, "graphical_model", fig), "graphical model")])


def truncated_card(out: str, ex: exhibits.Exhibit) -> Card:
    g = exhibits.truncated(ex.extra["model"], T=9, k=3)
    g.save(os.path.join(out, "truncated_bptt.json"))
    return Card("Truncated BPTT (state detached every 3 steps)",
                "the edges cut by detach() are dashed: gradients flow back only inside each "
                "window of 3 steps.",
                [(_draw(out, "truncated_bptt", viz.unfolded(g, max_steps=None)), "unfolded"),
                 (_draw(out, "truncated_bptt_grads", viz.unfolded(g, max_steps=None,
                                                                  grads=True)),
                  "gradient norms: they restart at each window")])


def vanishing_card(out: str) -> Card:
    short, long = vanishing.train(5), vanishing.train(50)
    card = Card("Vanishing gradients: an Elman RNN asked to recall its first input",
                "the loss is at the last step, so learning needs a gradient all the way back to "
                "h(1); over 50 steps it shrinks by orders of magnitude (chart: log scale).")
    for run in (short, long):
        name = f"vanishing_T{run.T}"
        run.graph.save(os.path.join(out, name + ".json"))
        viz.gradient_chart(run.graph, os.path.join(out, name + "_chart.png"),
                           title=f"recall the first symbol, T = {run.T}")
        card.figures.append((name + "_chart.png", f"T = {run.T}"))
        card.notes.append(f"T = {run.T}: held-out accuracy {run.accuracy:.3f} "
                          f"(chance {1 / vanishing.K:.3f})\n{viz.diagnose(run.graph)}")
    card.figures.append((_draw(out, "vanishing_T50_grads",
                               viz.unfolded(long.graph, max_steps=10, grads=True)),
                         "T = 50: the overlay fades towards the first steps"))
    return card


def build(out: str = "out", quick: bool = False, log: Callable[[str], None] = print) -> str:
    """Train, draw and write the whole gallery into ``out``; returns the index.html path."""
    os.makedirs(out, exist_ok=True)
    start = time.perf_counter()
    cards = []
    for key, make, steps in exhibits.BUILDERS:
        t = time.perf_counter()
        ex = make(max(20, steps // 10) if quick else steps)
        cards.append(exhibit_card(out, ex))
        if key == "elman":
            cards.append(graphical_card(out, ex))
            cards.append(truncated_card(out, ex))
        log(f"  {key:22s} {time.perf_counter() - t:5.1f} s")
    t = time.perf_counter()
    cards.insert(1, vanishing_card(out))
    log(f"  {'vanishing gradients':22s} {time.perf_counter() - t:5.1f} s")
    index = page.write(out, cards, seconds=time.perf_counter() - start)
    return index
