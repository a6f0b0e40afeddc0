"""Notebooks: figures and reports display inline, executed in a real Jupyter kernel.

Runs tests/notebooks/viz_inline.ipynb with nbclient (the `notebook` extra: nbclient, nbformat,
ipykernel) and checks each output cell; skips cleanly without them or without Graphviz.
"""
from __future__ import annotations

import pathlib
import shutil

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "tests" / "notebooks" / "viz_inline.ipynb"


@pytest.fixture(scope="module")
def cells():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    if shutil.which("dot") is None:
        pytest.skip("Graphviz `dot` not installed (apt-get install graphviz)")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT)}})
    client.execute()
    return [c for c in nb.cells if c.cell_type == "code"]


def outputs(cell, mime):
    return [o["data"][mime] for o in cell.outputs
            if o["output_type"] in ("execute_result", "display_data") and mime in o["data"]]


def test_no_cell_raised(cells):
    assert not [o for c in cells for o in c.outputs if o["output_type"] == "error"]


def test_a_figure_shows_as_svg(cells):
    for cell in cells[1:3]:
        svg = outputs(cell, "image/svg+xml")
        assert len(svg) == 1 and "<svg" in svg[0] and 'class="node"' in svg[0]
    assert "W" in outputs(cells[1], "image/svg+xml")[0]  # the folded loop's parameter


def test_a_report_shows_as_html_not_a_dataclass_repr(cells):
    html = outputs(cells[3], "text/html")
    assert len(html) == 1 and "gradient flow: " in html[0] and "<li>" in html[0]
    assert "Report(" not in html[0]


def test_a_missing_graphviz_shows_the_install_help(cells):
    html = outputs(cells[4], "text/html")
    assert len(html) == 1 and "apt-get install graphviz" in html[0]
    assert not outputs(cells[4], "image/svg+xml")
