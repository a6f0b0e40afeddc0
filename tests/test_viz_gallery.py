"""demos: one exhibit, the truncated-BPTT and graphical-model cards, and index.html (fast)."""
from __future__ import annotations

import re
import shutil

import pytest

pytest.importorskip("tinygraph.tasks")
pytest.importorskip("matplotlib")
if shutil.which("dot") is None:
    pytest.skip("Graphviz `dot` not installed (apt-get install graphviz)", allow_module_level=True)

from demos import exhibits, gallery, page  # noqa: E402

#: the book's figures, in the book's order (truncated BPTT sits with BPTT, §10.2.2)
BOOK_ORDER = ["fig-10-1", "fig-10-2", "fig-10-3", "fig-10-4", "fig-10-5", "fig-10-6",
              "truncated-bptt", "fig-10-7", "fig-10-11", "fig-10-12", "fig-10-13a",
              "fig-10-13b", "fig-10-13c", "fig-10-14", "vanishing"]


def test_sections_are_every_figure_in_the_books_order():
    anchors = [s.anchor for s in gallery.SECTIONS]
    assert anchors[:len(BOOK_ORDER)] == BOOK_ORDER
    assert len(set(anchors)) == len(anchors)


def test_one_exhibit_card_writes_its_figures_and_report(tmp_path):
    ex = exhibits.dynamical(steps=20)
    card = gallery.exhibit_card(str(tmp_path), ex)
    names = [name for name, _ in card.figures]
    assert names[:2] == ["dynamical_folded.png", "dynamical_unfolded.png"]
    for name in names:
        assert (tmp_path / name).stat().st_size > 1000
        if name.endswith("_folded.png") or name.endswith("_unfolded.png"):
            assert (tmp_path / name.replace(".png", ".svg")).exists()  # the click target
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
    assert imgs and all(a.endswith(".svg") and b.endswith(".png") for a, b, _ in imgs)
    w, _ = page.png_size(str(tmp_path / "graphical_model.png"))
    assert ("graphical_model.svg", "graphical_model.png", str(w // 2)) in imgs
