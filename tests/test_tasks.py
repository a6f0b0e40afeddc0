"""Every task LEARNS: a held-out metric well past chance, seeded, deterministic (training times are
reported by `make bench`, never asserted here: a loaded machine is not a wrong answer)."""
from __future__ import annotations

import functools

import numpy as np
import pytest

from tinygraph import data as D
from tinygraph import tasks


# (trainer, kwargs, bound): higher-is-better metrics must exceed the bound; bits/char must be
# at least `bound` bits below the held-out unigram entropy (a model that learned only letter
# frequencies).
CASES = {
    "dynamical": (tasks.train_dynamical, {}, 0.95),
    "last": (tasks.train_last, {}, 0.9),
    "jordan": (tasks.train_jordan, {}, 0.9),
    "bidirectional": (tasks.train_bidirectional, {}, 0.9),
    "seq2seq": (tasks.train_seq2seq, {}, 0.8),
    "recursive": (tasks.train_recursive, {}, 0.85),
    "elman": (tasks.train_elman, {}, 0.8),
    "deep_stacked": (tasks.train_deep, {"kind": "stacked"}, 0.8),
    "deep_transition": (tasks.train_deep, {"kind": "deep_transition"}, 0.8),
    "deep_skip": (tasks.train_deep, {"kind": "skip"}, 0.8),
    "recall_lstm": (tasks.train_recall, {"arch": "LSTM"}, 0.9),
    "recall_gru": (tasks.train_recall, {"arch": "GRU"}, 0.9),
}


@functools.lru_cache(maxsize=None)
def trained(name: str) -> tasks.TrainResult:
    train, kwargs, _ = CASES[name]
    return train(seed=0, **kwargs)


@pytest.mark.parametrize("name", sorted(CASES))
def test_task_learns_well_past_chance_on_held_out_data(name):
    bound = CASES[name][2]
    res = trained(name)
    assert all(np.isfinite(res.history))
    if res.higher_is_better:
        assert res.metric > bound, f"{name}: {res.metric_name} {res.metric:.3f} <= {bound}"
        assert res.metric > res.chance + 0.3
    else:
        assert res.metric < res.chance - bound, (
            f"{name}: {res.metric_name} {res.metric:.3f}, unigram {res.chance:.3f}")
    assert np.mean(res.history[-20:]) < 0.75 * np.mean(res.history[:5])


def test_training_is_deterministic():
    a = tasks.train_last(steps=15, seed=3)
    b = tasks.train_last(steps=15, seed=3)
    assert a.history == b.history and a.metric == b.metric
    c = tasks.train_last(steps=15, seed=4)
    assert c.history != a.history


def test_jordan_free_running_is_scored_on_its_own_outputs():
    res = trained("jordan")
    assert res.extra["teacher_forced_accuracy"] >= res.metric - 1e-12
    assert res.extra["whole_melody_rate"] > 0.5


def test_bidirectional_beats_a_forward_only_rnn_that_cannot_see_the_future():
    res = trained("bidirectional")
    assert res.metric > res.extra["forward_only_accuracy"] + 0.2


def test_recursive_net_generalises_to_larger_trees_than_it_saw():
    res = trained("recursive")
    assert res.extra["larger_trees_accuracy"] > 0.6


def test_gated_cells_keep_the_first_symbol_over_four_times_the_trained_lag_and_the_rnn_does_not():
    rnn = tasks.train_recall("RNN", seed=0)
    for name in ("recall_lstm", "recall_gru"):
        by_lag = trained(name).extra["accuracy_by_lag"]
        assert sorted(by_lag) == [15, 30, 60]
        assert by_lag[60] > 0.9, (name, by_lag)
    assert rnn.extra["accuracy_by_lag"][60] < 0.5, rnn.extra


def test_registry_lists_one_task_per_architecture():
    assert set(tasks.TASKS) == {"dynamical", "elman", "last", "jordan", "bidirectional",
                                "seq2seq", "deep", "recursive", "recall"}
    for t in tasks.TASKS.values():
        d = t.make_data(0)
        assert isinstance(d, dict) and d


def test_data_generators_are_seeded_and_well_formed():
    x1, y1 = D.majority(50, 9, seed=1)
    x2, y2 = D.majority(50, 9, seed=1)
    np.testing.assert_array_equal(x1, x2)
    assert ((x1 == 0).sum(1) != (x1 == 1).sum(1)).all()
    np.testing.assert_array_equal(y1, (x1 == 0).sum(1) > (x1 == 1).sum(1))
    x, y0, y = D.ring_walk(5, 7, K=8, seed=0)
    prev = np.concatenate([y0[:, None], y[:, :-1]], axis=1)
    np.testing.assert_array_equal(y, (prev + 2 * x - 1) % 8)
    x, y = D.neighbour_copy(4, 6, K=6, seed=0)
    assert y[0, 0] == (0 if x[0, 0] % 2 == 0 else x[0, 1])
    d = D.reverse_pairs(6, 2, 5, seed=0)
    for i in range(6):
        n = d["src_len"][i]
        np.testing.assert_array_equal(d["tgt_out"][i, :n], d["src"][i, :n][::-1])
        assert d["tgt_out"][i, n] == D.synthetic.EOS and (d["src"][i, n:] == D.synthetic.PAD).all()
    x, y = D.recall_first(6, 5, K=4, distractors=3, seed=0)
    assert x.shape == (6, 6) and (x[:, 0] == y).all() and (y < 4).all()
    assert ((x[:, 1:] >= 4) & (x[:, 1:] < 7)).all()
    trees, y = D.expression_trees(20, 1, 6, K=3, seed=0)
    assert [sum(D.tree_leaves(t)) % 3 for t in trees] == y.tolist()


def test_corpus_is_shipped_and_round_trips():
    text = D.load_text()
    assert len(text) > 4000 and text.startswith("CHAPTER I.")
    v = D.CharVocab(text)
    assert v.decode(v.encode(text)) == text
    with pytest.raises(ValueError, match="not in the vocabulary"):
        v.encode("\u00e9")
    with pytest.raises(ValueError, match="unknown corpus"):
        D.load_text("nope")
