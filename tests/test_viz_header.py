"""viz.header: the figure header prints what viz.infer could not decide; diagnose says it too."""
from __future__ import annotations

from html import escape

import numpy as np
import pytest

pytest.importorskip("networkx")
tg = pytest.importorskip("tinygraph")

import viz  # noqa: E402
from viz.header import new_figure  # noqa: E402
from viz.infer import NOTE_GUESSED, NOTE_UNDECIDED  # noqa: E402

H = 4


def undecided(seed: int):
    """A small tree (W and U read again and again, but no chain of steps): inference gives up."""
    rng = np.random.default_rng(seed)
    W, U = (tg.Parameter(rng.normal(size=(H, H)) / 2, name=k) for k in "WU")
    x = [tg.tensor(rng.normal(size=H)) for _ in range(4)]
    tg.new_graph()

    def node(a, b):
        return tg.tanh(W @ a + U @ b)
    loss = node(node(x[0], x[1]), node(x[2], x[3])).sum()
    loss.backward(keep_grads=True)
    return tg.trace(loss)


def guessed(seed: int, T: int = 5):
    """A plain loop without tg.step, .named or the source: steps inferred, names guessed."""
    rng = np.random.default_rng(seed)
    W, U = (tg.Parameter(rng.normal(size=(H, H)) / 2, name=k) for k in "WU")
    x = tg.tensor(rng.normal(size=(T, H)))
    tg.new_graph()
    h = tg.zeros(H)
    for t in range(T):
        h = tg.tanh(W @ h + U @ x[t])
    loss = (h * h).sum()
    loss.backward(keep_grads=True)
    return tg.trace(loss)


@pytest.mark.parametrize("make, note", [(undecided, NOTE_UNDECIDED), (guessed, NOTE_GUESSED)])
@pytest.mark.parametrize("view", ["folded", "unfolded"])
def test_every_view_prints_the_inference_note_in_its_header(make, note, view):
    g = make(3)
    assert viz.load(g).graph["inference_note"] == note
    fig = getattr(viz, view)(g)
    head = fig.source.split("\n\t", 1)[0] + fig.source[fig.source.find("label=<"):][:2000]
    assert escape(note) in fig.source and escape(note) in head
    assert fig.source.count(escape(note)) == 1                     # once, not once per view


def test_an_annotated_graph_gets_no_inference_note():
    from graphs import elman
    for view in (viz.folded, viz.unfolded):
        src = view(elman(4)).source
        assert escape(NOTE_GUESSED) not in src and escape(NOTE_UNDECIDED) not in src


def test_the_note_sits_beside_the_level_note_and_the_legend():
    import networkx as nx
    G = nx.DiGraph(inference_note="steps guessed")
    fig = new_figure("x", note="no named tensors", graph=G)
    assert "steps guessed" in fig.source and "no named tensors" in fig.source
    assert "<TR><TD>" in fig.source                                 # two rows of one label
    assert "steps guessed" not in new_figure("x", note="n").source


def test_diagnose_gives_the_inference_note_as_a_reason_when_it_finds_no_recurrence():
    report = viz.diagnose(undecided(5))
    assert report.verdict == "no recurrence"
    assert NOTE_UNDECIDED in report.reasons
    assert NOTE_UNDECIDED in str(report)
    found = viz.diagnose(guessed(5))                               # recurrence found: no hint
    assert found.verdict != "no recurrence" and NOTE_GUESSED not in found.reasons
