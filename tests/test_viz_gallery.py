"""demos: the sections in the book's order, one exhibit, the truncated-BPTT, graphical-model,
plain-loop, gated-cell and PyTorch cards, and index.html (fast: quick training budgets)."""
from __future__ import annotations

import re
import shutil
import sys

import pytest

pytest.importorskip("tinygraph.tasks")
pytest.importorskip("matplotlib")
if shutil.which("dot") is None:
    pytest.skip("Graphviz `dot` not installed (apt-get install graphviz)", allow_module_level=True)

import viz  # noqa: E402
from demos import exhibits, gallery, page  # noqa: E402

#: the book's figures, in the book's order (truncated BPTT sits with BPTT, §10.2.2; the plain
#: loop redraws fig. 10.3; long-term dependencies §10.7, gated cells §10.10, clipping §10.11.1;
#: the PyTorch models last)
BOOK_ORDER = ["fig-10-1", "fig-10-2", "fig-10-3", "plain-loop", "fig-10-4", "fig-10-5",
              "fig-10-6", "truncated-bptt", "fig-10-7", "fig-10-11", "fig-10-12", "fig-10-13a",
              "fig-10-13b", "fig-10-13c", "fig-10-14", "vanishing", "flow-per-loss-term",
              "long-range", "gated-cells", "exploding", "pytorch"]


def test_sections_are_every_figure_in_the_books_order():
    anchors = [s.anchor for s in gallery.SECTIONS]
    assert anchors == BOOK_ORDER
    assert len(set(anchors)) == len(anchors)


def beside(tmp_path, name):
    """The SVG and the interactive page written next to a figure's PNG."""
    stem = name[:-4]
    html = (tmp_path / (stem + ".html")).read_text(encoding="utf-8")
    return (tmp_path / (stem + ".svg")).exists() and "<svg" in html and "<script" in html


def test_one_exhibit_card_writes_its_figures_and_report(tmp_path):
    ex = exhibits.dynamical(steps=20)
    card = gallery.exhibit_card(str(tmp_path), ex)
    names = [name for name, _ in card.figures]
    assert names[:2] == ["dynamical_folded.png", "dynamical_unfolded.png"]
    for name in names:
        assert (tmp_path / name).stat().st_size > 1000
        if name.endswith("_folded.png") or name.endswith("_unfolded.png"):
            assert beside(tmp_path, name)                  # the click targets
    assert (tmp_path / "dynamical.json").exists() and not list(tmp_path.glob("*.dot"))
    assert "gradient flow:" in card.notes[-1] and "R^2" in card.notes[0]
    assert card.anchor == "fig-10-1"


def test_single_output_has_its_target_on_the_last_step(tmp_path):
    g = exhibits.single_output(steps=20).graph.to_networkx()
    last = max(d["step"] for _, d in g.nodes(data=True) if d["step"] is not None)
    named = {(d["name"], d["step"]) for _, d in g.nodes(data=True) if d["name"]}
    assert {("o", last), ("L", last), ("y", last)} <= named


def test_teacher_forcing_card_has_both_halves(tmp_path):
    card = gallery.teacher_card(str(tmp_path), 20)
    captions = [c for _, c in card.figures]
    assert "train time: the true y(t-1) → h(t)" in captions
    assert "test time: o(t-1) → h(t)" in captions


def test_elman_cards_and_index(tmp_path):
    ex = exhibits.elman(steps=5)
    cards = [gallery.graphical_card(str(tmp_path), ex), gallery.truncated_card(str(tmp_path), ex)]
    assert "stroke-dasharray" in (tmp_path / "truncated_bptt.svg").read_text()  # cut edges
    index = page.write(str(tmp_path), cards, seconds=1.0)
    html = open(index, encoding="utf-8").read()
    assert html.count("<section id=") == 2 and "graphical_model.png" in html
    assert "Truncated BPTT" in html
    # contents with anchors; pictures are the PNGs (same in every browser), linked to the SVGs
    assert "href='#fig-10-7'" in html and "id='truncated-bptt'" in html
    imgs = re.findall(r"<a href='([^']+)'><img src='([^']+)' width='(\d+)'", html)
    assert imgs and all(a.endswith(".html") and b.endswith(".png") for a, b, _ in imgs)
    w, _ = page.png_size(str(tmp_path / "graphical_model.png"))
    assert ("graphical_model.html", "graphical_model.png", str(w // 2)) in imgs
    assert "<a href='graphical_model.svg'>SVG</a>" in html      # the SVG is one click away
    assert all(beside(tmp_path, b) for _, b, _ in imgs)


def test_plain_loop_card_draws_the_loop_viz_inferred(tmp_path):
    card = gallery.plain_loop_card(str(tmp_path), steps=20)
    names = [n for n, _ in card.figures]
    assert names == ["plain_loop_folded.png", "plain_loop_unfolded.png",
                     "plain_loop_grads_unfolded.png"]
    assert all(beside(tmp_path, n) for n in names)
    assert "inferred: 5 steps, names from source" in card.notes[0]
    svg = (tmp_path / "plain_loop_unfolded.svg").read_text(encoding="utf-8")
    assert ">(5)<" in svg and ">h<" in svg                         # h⁽⁵⁾: steps and names found
    assert card.anchor == "plain-loop"


def test_gated_card_puts_each_models_flow_map_beside_its_verdict_and_accuracy(tmp_path):
    card = gallery.gated_card(str(tmp_path), steps=20)
    flows = [(n, c) for n, c in card.figures if n.startswith("gated_")]
    assert [n for n, _ in flows] == ["gated_rnn_flow.png", "gated_lstm_flow.png",
                                     "gated_gru_flow.png"]
    for (name, caption), arch in zip(flows, ("RNN", "LSTM", "GRU")):
        assert caption.startswith(f"{arch}: held-out accuracy ") and "diagnose: " in caption
        assert page.png_size(str(tmp_path / name))[0] > 400
        g = viz.load(str(tmp_path / name.replace(".png", ".json")))
        labels = {v["name"] for v in g.graph["flow"]["variables"]}      # exported with tg.trace
        assert labels == ({"h", "c"} if arch == "LSTM" else {"h"})
    assert [n.split(":")[0] for n in card.notes] == ["RNN", "LSTM", "GRU"]
    assert all("gradient flow:" in n and "lag 15:" in n for n in card.notes)
    assert beside(tmp_path, "lstm_folded.png") and beside(tmp_path, "gru_unfolded.png")


def test_torch_card_is_skipped_with_a_note_without_torch(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)                # `import torch` fails
    card = gallery.torch_card(str(tmp_path))
    assert card.figures == [] and card.notes[0].startswith("skipped: torch is not installed")
    assert 'pip install "tinygraph[torch]"' in card.notes[0]
