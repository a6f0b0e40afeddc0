"""viz.join: per-step terms recorded outside tg.step join the one step they read."""
from __future__ import annotations

import networkx as nx
import numpy as np

import tinygraph as tg
import viz
from tinygraph import nn


def _partly_annotated(T, seed=0):
    # nn.RNN tags its steps; the loss terms are made outside any tg.step, as users write them
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((2, T, 3)), rng.integers(0, 4, (2, T))
    out = nn.RNN(3, 8, 4, rng=seed)(x)
    terms = [tg.cross_entropy(out.o[t], tg.tensor(y[:, t])).named("L") for t in range(T)]
    total = tg.stack(terms).sum().named("L")
    total.backward(keep_grads=True)
    return tg.trace(total)


def _roles(F):
    return sorted((d["name"] or d["op"], tuple(sorted(F.nodes[v]["name"] or F.nodes[v]["op"]
                                                       for v in F.successors(r))))
                  for r, d in F.nodes(data=True))


def test_loss_terms_made_outside_steps_join_the_step_they_read():
    G = viz.load(_partly_annotated(5))
    Ls = {d["step"] for _, d in G.nodes(data=True) if d["name"] == "L" and d["kind"] == "op"}
    assert Ls == {1, 2, 3, 4, 5, None}            # five terms tagged; the total reads all steps
    assert "5 untagged 'L' nodes" in G.graph["inference_note"]
    assert "tg.step" in viz.unfolded(G).source     # the figure says what was done and the fix


def test_the_folded_view_no_longer_grows_with_T():
    a, b = viz.fold(_partly_annotated(3)), viz.fold(_partly_annotated(20))
    assert _roles(a) == _roles(b)
    assert sum(1 for _, d in a.nodes(data=True) if d["name"] == "L") <= 2


def test_a_sum_over_steps_and_an_untagged_graph_are_left_alone():
    x = tg.tensor(np.ones(3), requires_grad=True, name="x")
    G = nx.DiGraph(tg.trace(((x * 2).named("a") + 1).named("a").sum()).to_networkx())
    H = viz.load(G)                                 # no step tags anywhere: nothing to join
    assert all(d["step"] is None for _, d in H.nodes(data=True))
    assert "inference_note" not in H.graph
