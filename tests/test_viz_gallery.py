"""demos: one exhibit, the truncated-BPTT and graphical-model cards, and index.html (fast)."""
from __future__ import annotations

import shutil

import pytest

pytest.importorskip("tinygraph.tasks")
pytest.importorskip("matplotlib")
if shutil.which("dot") is None:
    pytest.skip("Graphviz `dot` not installed (apt-get install graphviz)", allow_module_level=True)

from demos import exhibits, gallery, page  # noqa: E402


def test_one_exhibit_card_writes_its_figures_and_report(tmp_path):
    ex = exhibits.dynamical(steps=20)
    card = gallery.exhibit_card(str(tmp_path), ex)
    names = [name for name, _ in card.figures]
    assert names[:2] == ["dynamical_folded.svg", "dynamical_unfolded.svg"]
    for name in names:
        assert (tmp_path / name).stat().st_size > 1000
    assert (tmp_path / "dynamical.json").exists() and not list(tmp_path.glob("*.dot"))
    assert "gradient flow:" in card.notes[-1] and "R^2" in card.notes[0]


def test_elman_cards_and_index(tmp_path):
    ex = exhibits.elman(steps=5)
    cards = [gallery.graphical_card(str(tmp_path), ex), gallery.truncated_card(str(tmp_path), ex)]
    assert "stroke-dasharray" in (tmp_path / "truncated_bptt.svg").read_text()  # cut edges
    index = page.write(str(tmp_path), cards, seconds=1.0)
    html = open(index, encoding="utf-8").read()
    assert html.count("<section>") == 2 and "graphical_model.svg" in html
    assert "Truncated BPTT" in html
