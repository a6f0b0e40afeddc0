"""Write the gallery: every figure of ch. 10 part 1 in the book's order, then index.html.

Flow: demos.exhibits / demos.vanishing / demos.plain_loop / demos.flow_exhibits /
demos.gated_exhibit / demos.torch_exhibit (trained models, traced graphs) -> viz (figures,
charts, flow maps, diagnose) -> files in ``out/`` -> demos.page (index.html).

Every graph figure is written three times: PNG (shown on the page), SVG (tooltips) and its
interactive page (``.html`` from ``viz.render``: pan, zoom, hover, a slider over the steps),
which the page links each picture to.

The sections are listed once, in :data:`SECTIONS`, in the book's order: to add a section,
append a ``Section`` (or insert it where the book has it).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable

import viz

from . import exhibits, flow_exhibits, gated_exhibit, page, plain_loop, vanishing


@dataclass
class Card:
    """One section of index.html: a title, a line of explanation, figures, and notes.

    ``figures`` holds (file name, caption) pairs; a caption starting with "every op" marks a
    wide op-level figure (the page shows it full width, click to enlarge).
    """

    title: str
    blurb: str
    figures: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    anchor: str = ""


@dataclass(frozen=True)
class Section:
    """One entry of the gallery: its anchor, and what draws it (out dir, training steps) into
    one card, or several (a list: the first gets the anchor, the others keep their own)."""

    anchor: str
    make: Callable[[str, int], "Card | list[Card]"]
    steps: int = 300


def _draw(out: str, name: str, fig) -> str:
    """SVG (with tooltips), PNG and the interactive page beside them; returns the PNG's file
    name (the page shows the PNG, so it looks the same in every browser, and links to the
    interactive page and the SVG)."""
    for ext in ("svg", "png", "html"):
        viz.render(fig, os.path.join(out, f"{name}.{ext}"))
    return name + ".png"


def exhibit_card(out: str, ex: exhibits.Exhibit) -> Card:
    """Folded, unfolded, gradient overlays and chart of one trained architecture."""
    k = ex.key
    ex.graph.save(os.path.join(out, f"{k}.json"))
    g = viz.load(ex.graph)  # loaded, checked and inferred once; every view below takes it as is
    card = Card(f"{ex.title} ({ex.figure})", ex.blurb, notes=[ex.score], anchor=_anchor(ex))
    card.figures.append((_draw(out, f"{k}_folded", viz.folded(g)), "folded"))
    card.figures.append((_draw(out, f"{k}_unfolded", viz.unfolded(g, max_steps=8)), "unfolded"))
    if ex.op_level:
        card.figures.append((_draw(out, f"{k}_folded_op", viz.folded(g, level="op")),
                             "every op, folded"))
        card.figures.append((_draw(out, f"{k}_unfolded_op",
                                   viz.unfolded(g, level="op", max_steps=4,
                                                params="per_step")),
                             "every op, unfolded (first and last steps; parameters per step)"))
    _gradients(out, card, g, k, ex.title)
    return card


def _gradients(out: str, card: Card, g, k: str, title: str) -> None:
    """The overlays, the chart and the diagnosis, when the graph has gradients."""
    g = viz.load(g)  # a graph viz.load made already comes back as it is
    report = viz.diagnose(g)
    if any(d.get("grad_norm") is not None for _, d in g.nodes(data=True)):
        card.figures.append((_draw(out, f"{k}_grads_folded", viz.folded(g, grads=True)),
                             "gradient norms per role (min · median · max over steps)"))
        card.figures.append((_draw(out, f"{k}_grads_unfolded",
                                   viz.unfolded(g, max_steps=8, grads=True)),
                             "‖∂L/∂·‖ on every node and edge"))
        try:
            viz.gradient_chart(g, os.path.join(out, f"{k}_chart.png"), title=title)
            card.figures.append((f"{k}_chart.png", "gradient through time"))
        except ValueError as exc:  # no recurrent variable carries a gradient norm
            card.notes.append(f"no chart: {exc}")
    card.notes.append(str(report))


def _anchor(ex: exhibits.Exhibit) -> str:
    """fig. 10.13a -> fig-10-13a; figs. 10.4, 10.6 -> fig-10-4."""
    first = ex.figure.split(",")[0].replace("figs.", "fig.").replace("fig.", "").strip()
    return "fig-" + first.replace(".", "-")


def exhibit(build: Callable[[int], exhibits.Exhibit]) -> Callable[[str, int], Card]:
    """A section drawing one exhibit with :func:`exhibit_card`."""
    return lambda out, steps: exhibit_card(out, build(steps))


def teacher_card(out: str, steps: int) -> Card:
    """Fig. 10.6: the train-time and test-time halves side by side, each folded and unfolded."""
    ex = exhibits.teacher_forcing(steps)
    card = exhibit_card(out, ex)
    test = ex.extra["test"]
    test.save(os.path.join(out, "teacher_forcing_test.json"))
    card.figures[2:2] = [
        (_draw(out, "teacher_forcing_test_folded", viz.folded(test)), "test time, folded"),
        (_draw(out, "teacher_forcing_test_unfolded", viz.unfolded(test)),
         "test time: o(t-1) → h(t)")]
    card.figures[0] = (card.figures[0][0], "train time, folded")
    card.figures[1] = (card.figures[1][0], "train time: the true y(t-1) → h(t)")
    return card


def graphical_card(out: str, ex: exhibits.Exhibit) -> Card:
    fig = viz.graphical_model(ex.graph, steps=5)
    return Card("Recurrent networks as directed graphical models (figs. 10.7-10.8)",
                "the dependencies among the outputs y(1..5) read off the recorded Elman graph: "
                "fully connected (a table of k^τ - 1 numbers; one colour per source output) "
                "versus through h(t) (θ shared by every step).",
                [(_draw(out, "graphical_model", fig), "graphical model")], anchor="fig-10-7")


def truncated_card(out: str, ex: exhibits.Exhibit) -> Card:
    g = exhibits.truncated(ex.extra["model"], T=9, k=3)
    g.save(os.path.join(out, "truncated_bptt.json"))
    return Card("Truncated BPTT (state detached every 3 steps)",
                "the edges cut by detach() are dashed: gradients flow back only inside each "
                "window of 3 steps.",
                [(_draw(out, "truncated_bptt", viz.unfolded(g, max_steps=None)), "unfolded"),
                 (_draw(out, "truncated_bptt_grads", viz.unfolded(g, max_steps=None,
                                                                  grads=True)),
                  "gradient norms: they restart at each window")], anchor="truncated-bptt")


def vanishing_card(out: str, steps: int = 150) -> Card:
    short, long = vanishing.train(5, steps), vanishing.train(50, steps)
    card = Card("Vanishing gradients: an Elman RNN asked to recall its first input (§10.7)",
                "the loss is at the last step, so learning needs a gradient all the way back to "
                "h(1); over 50 steps it shrinks by orders of magnitude (chart: log scale).",
                anchor="vanishing")
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


def plain_loop_card(out: str, steps: int = 150) -> Card:
    """Fig. 10.3 again, from a plain Python loop without tg.step or .named: viz infers both."""
    g, score = plain_loop.record_plain_loop(T=5, train_steps=steps)
    g.save(os.path.join(out, "plain_loop.json"))
    G = viz.load(g)
    inferred = G.graph.get("inferred") or {}
    card = Card("A plain loop, no annotations: the same figure 10.3",
                "for t in range(T): h = tg.tanh(W @ h + U @ x[t] + b); o = V @ h + c; "
                "L = tg.cross_entropy(o, y[t]) — no tg.step(), no .named(): viz finds the "
                "time steps from the repeated loop body and the names h, o, L from the "
                "source lines (recorded with tg.recording(source=True)).",
                anchor="plain-loop")
    card.figures += [(_draw(out, "plain_loop_folded", viz.folded(g)), "folded"),
                     (_draw(out, "plain_loop_unfolded", viz.unfolded(g)), "unfolded"),
                     (_draw(out, "plain_loop_grads_unfolded", viz.unfolded(g, grads=True)),
                      "‖∂L/∂·‖ on every node and edge")]
    card.notes += [f"{score}; inferred: {inferred.get('steps')} steps, names from "
                   f"{inferred.get('names')}"
                   + (f"\nnote: {G.graph['inference_note']}" if G.graph.get("inference_note")
                      else ""),
                   str(viz.diagnose(g))]
    return card


def long_range_card(out: str, steps: int = 300) -> Card:
    """Recall after T − 1 distractors at several T (fewer lengths with the quick budget)."""
    lengths = (3, 6, 10, 15, 20, 30, 45, 60) if steps >= 300 else (3, 10, 30)
    return flow_exhibits.long_range(out, lengths=lengths, steps=steps)


def gated_card(out: str, steps: int = 300) -> Card:
    """§10.10: vanilla RNN vs LSTM vs GRU on recall-the-first-symbol after k distractors."""
    ex = gated_exhibit.build(None, steps=steps)
    card = Card("Gated cells: vanilla RNN vs LSTM vs GRU (§10.10)",
                f"the three trained on the same data and budget to recall the first symbol "
                f"after k = {ex.k} distractors (the gated cells start with their keep gate open, "
                f"bias {ex.keep_bias:g}). Per model: the flow ‖∂L/∂h(t)‖ from the loss at the "
                f"last step back to every state (and the LSTM's cell state c(t), where it keeps "
                f"its memory) on held-out sequences, and diagnose's verdict beside it (the "
                f"worst of its variables: an LSTM whose h reads as vanishing still carries the "
                f"gradient through c).",
                anchor="gated-cells")
    for arch in gated_exhibit.DRAWN:
        k = arch.lower()
        ex.graphs[arch].save(os.path.join(out, f"{k}.json"))
        card.figures += [(_draw(out, f"{k}_folded", viz.folded(ex.graphs[arch])),
                          f"{arch}, folded"),
                         (_draw(out, f"{k}_unfolded", viz.unfolded(ex.graphs[arch])),
                          f"{arch}, unfolded (4 distractors drawn)")]
    lags = sorted(next(iter(ex.accuracy.values())))
    for arch, g in ex.flows.items():
        k = arch.lower()
        g.save(os.path.join(out, f"gated_{k}_flow.json"))
        report = viz.diagnose(g)
        fig = viz.flow_map(g, os.path.join(out, f"gated_{k}_flow.png"),
                           title=f"{arch}, lag {ex.k}")
        fig.clear()
        acc = ex.accuracy[arch]
        card.figures.append((f"gated_{k}_flow.png",
                             f"{arch}: held-out accuracy {acc[ex.k]:.2f} at lag {ex.k} "
                             f"(chance {ex.chance:.2f}); diagnose: {report.verdict} "
                             f"({_horizons(report)})"))
        card.notes.append(f"{arch}: " + ", ".join(f"lag {lag}: {acc[lag]:.3f}" for lag in lags)
                          + f" (chance {ex.chance:.2f}; trained {ex.seconds[arch]:.1f} s)\n"
                          + str(report))
    return card


def _horizons(report: viz.Report) -> str:
    """Each variable's verdict and horizon, e.g. ``c: healthy, horizon ≥ 15; h: vanishing,
    horizon 6`` (an LSTM keeps its memory in c, while its h may read as vanishing)."""
    return "; ".join(
        f"{f.variable}: {f.verdict}" + ("" if f.horizon is None else
                                        f", horizon {'≥ ' if f.horizon >= f.span else ''}"
                                        f"{min(f.horizon, f.span)} {f.unit}s")
        for f in report.findings)


def torch_card(out: str, steps: int = 0) -> Card:
    """The PyTorch adapter: a torch Elman loop and nn.LSTM drawn (skipped without torch)."""
    card = Card("PyTorch models, drawn and diagnosed",
                "a hand-written torch Elman loop and an nn.LSTM, recorded with "
                "tinygraph.adapters.torch (public hooks only) and drawn like the book's "
                "figures, with torch's own gradients.", anchor="pytorch")
    try:
        from . import torch_exhibit
        card.figures += torch_exhibit.write(out)
    except ImportError as exc:  # torch is an optional extra
        card.notes.append(f"skipped: torch is not installed here ({exc}); "
                          f"pip install \"tinygraph[torch]\" to draw this section")
    return card


def _elman_section(make: Callable[[str, exhibits.Exhibit], Card]) -> Callable[[str, int], Card]:
    """A section drawn from the trained Elman RNN (trained once, shared)."""
    return lambda out, steps: make(out, exhibits.elman(steps))


#: the gallery, in the book's order (append or insert a Section to add one)
SECTIONS: list[Section] = [
    Section("fig-10-1", exhibit(exhibits.dynamical), 300),
    Section("fig-10-2", exhibit(exhibits.no_outputs), 400),
    Section("fig-10-3", exhibit(exhibits.elman), 400),
    Section("plain-loop", plain_loop_card, 150),
    Section("fig-10-4", exhibit(exhibits.output_recurrence), 300),
    Section("fig-10-5", exhibit(exhibits.single_output), 300),
    Section("fig-10-6", teacher_card, 300),
    Section("truncated-bptt", _elman_section(truncated_card), 400),
    Section("fig-10-7", _elman_section(graphical_card), 400),
    Section("fig-10-11", exhibit(exhibits.bidirectional), 300),
    Section("fig-10-12", exhibit(exhibits.seq2seq), 600),
    Section("fig-10-13a", exhibit(lambda s: exhibits.deep("stacked", s)), 300),
    Section("fig-10-13b", exhibit(lambda s: exhibits.deep("deep_transition", s)), 300),
    Section("fig-10-13c", exhibit(lambda s: exhibits.deep("skip", s)), 300),
    Section("fig-10-14", exhibit(exhibits.recursive), 600),
    Section("vanishing", vanishing_card, 150),
    Section("flow-per-loss-term", lambda out, steps: flow_exhibits.elman_flow(out, steps), 400),
    Section("long-range", long_range_card, 300),
    Section("gated-cells", gated_card, 300),
    Section("exploding", lambda out, steps: flow_exhibits.exploding(out, steps=steps), 150),
    Section("pytorch", torch_card, 0),
]


def build(out: str = "out", quick: bool = False, log: Callable[[str], None] = print) -> str:
    """Train, draw and write the whole gallery into ``out``; returns the index.html path."""
    os.makedirs(out, exist_ok=True)
    start = time.perf_counter()
    cards = []
    for section in SECTIONS:
        t = time.perf_counter()
        made = section.make(out, max(20, section.steps // 10) if quick else section.steps)
        made = made if isinstance(made, list) else [made]
        made[0].anchor = section.anchor
        cards.extend(made)
        log(f"  {section.anchor:22s} {time.perf_counter() - t:5.1f} s")
    return page.write(out, cards, seconds=time.perf_counter() - start)
