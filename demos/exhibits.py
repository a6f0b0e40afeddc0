"""The gallery's exhibits: train each architecture of ch. 10 briefly, then record one small batch.

Flow: tinygraph.tasks (data + training) -> a short held-out pass with ``backward(keep_grads=True)``
-> ``tg.trace`` -> viz figures (demos.gallery writes them, demos.page lists them).

Each exhibit returns the traced graph of a *short* sequence (so the unfolded figure is readable)
from a model that has learned its task, with the held-out score that says so.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import tinygraph as tg
from tinygraph import data as D
from tinygraph import nn, tasks

from .flow_exhibits import record_chars


@dataclass
class Exhibit:
    """One architecture in the gallery."""

    key: str
    title: str
    figure: str      # the book's figure
    blurb: str       # one line of explanation under the pictures
    graph: Any = None
    score: str = ""
    op_level: bool = False
    extra: dict = field(default_factory=dict)


@functools.lru_cache(maxsize=None)
def trained_elman(steps: int) -> tasks.TrainResult:
    """The Elman RNN of fig. 10.3, trained once and shared by the sections that draw it."""
    return tasks.train_elman(steps=steps)


@functools.lru_cache(maxsize=None)
def trained_jordan(steps: int) -> tasks.TrainResult:
    """The output-recurrent net of figs. 10.4 and 10.6, trained once with teacher forcing."""
    return tasks.train_jordan(steps=steps)


def _record(loss: tg.Tensor, flow: Any = None) -> Any:
    loss.backward(keep_grads=True)
    return tg.trace(loss, flow=flow)


def _score(r: tasks.TrainResult) -> str:
    better = "higher" if r.higher_is_better else "lower"
    return (f"{r.metric_name}: {r.metric:.3f} (chance {r.chance:.3f}, {better} is better; "
            f"trained {len(r.history)} steps in {r.seconds:.1f} s)")


def dynamical(steps: int) -> Exhibit:
    r = tasks.train_dynamical(steps=steps)
    d = tasks.make_dynamical_data(0)
    s = r.model(d["test_s0"][:4], steps=6)
    loss = tg.mse_loss(tg.stack(s, axis=1), d["test_s"][:4, :6]).named("L")
    return Exhibit("dynamical", "Dynamical system", "fig. 10.1",
                   "s(t) = f(s(t-1); θ): no input, one state feeding itself through W — the "
                   "folded graph is a single loop.", _record(loss), _score(r))


def _chars(model: Any, T: int = 6) -> Any:
    """The traced graph of `model` on T held-out characters, a loss at every step, with the
    per-loss-term flow to its (top) state exported, so diagnose gives a verdict."""
    return record_chars(model, T, batch=1)[0]


def no_outputs(steps: int) -> Exhibit:
    """Fig. 10.2: the trained Elman cell alone, h(t) = f(h(t-1), x(t); θ), no output, no loss."""
    r = trained_elman(steps)
    ids = tasks.make_char_data(0)["test"]
    h = r.model(ids[None, 300:306]).h[-1]  # the read-outs are recorded, but h(τ) needs none
    return Exhibit("no_outputs", "A recurrent network with no outputs", "fig. 10.2",
                   "h(t) = f(h(t-1), x(t); θ): the state summarises the inputs so far; the "
                   "trained Elman cell, read out nowhere (traced from h(τ)).",
                   tg.trace(h), "the cell of the Elman RNN below: " + _score(r))


def elman(steps: int) -> Exhibit:
    r = trained_elman(steps)
    ex = Exhibit("elman", "Elman RNN (hidden-to-hidden recurrence)", "fig. 10.3",
                 "h(t) = tanh(W h(t-1) + U x(t) + b), o(t) = V h(t) + c, a loss at every step "
                 "against its target y(t): the loop through the black square is W.",
                 _chars(r.model), _score(r), op_level=True)
    ex.extra["model"] = r.model
    return ex


def single_output(steps: int) -> Exhibit:
    r = tasks.train_last(steps=steps)
    d = tasks.make_majority_data(0, T=6)
    out = r.model(d["test_x"][:1])
    with tg.step(6):  # the one loss and its target y(τ) belong to the last step
        y = tg.tensor(d["test_y"][:1], name="y")
        loss = tg.cross_entropy(out.last, y).named("L")
    return Exhibit("single_output", "RNN with a single output", "fig. 10.5",
                   "reads the whole sequence and answers once at the end (majority label): the "
                   "only output o(τ), its loss L(τ) and target y(τ) sit on the last step.",
                   _record(loss), _score(r))


def _jordan_run(steps: int, mode: str) -> Any:
    r = trained_jordan(steps)
    d = tasks.make_jordan_data(0)
    out = r.model(d["test_x"][:1, :6], y0=d["test_y0"][:1], y=d["test_y"][:1, :6], mode=mode)
    return r, _record(nn.sequence_loss(out.o, d["test_y"][:1, :6]))


def output_recurrence(steps: int) -> Exhibit:
    """Fig. 10.4: the recurrence runs from the output o(t-1) to h(t) (the net running free)."""
    r, g = _jordan_run(steps, "free")
    return Exhibit("output_recurrence", "Recurrence from the output only", "fig. 10.4",
                   "h(t) reads x(t) and the previous output o(t-1) (through W), never h(t-1): "
                   "o is all the past the net keeps. Recorded running free on a held-out "
                   "sequence (the fed-back argmax carries no gradient).", g, _score(r))


def teacher_forcing(steps: int) -> Exhibit:
    """Fig. 10.6: train time (the true y(t-1) -> h(t)) and test time (o(t-1) -> h(t))."""
    r, train = _jordan_run(steps, "teacher")
    _, test = _jordan_run(steps, "free")
    ex = Exhibit("teacher_forcing", "Teacher forcing: train time and test time", "fig. 10.6",
                 "train time (left pair): the true y(t-1) is fed into h(t), drawn once per "
                 "step with its arrows to L(t) and to h(t+1); test time (right pair): the "
                 "net's own output o(t-1) is fed back instead.", train, _score(r))
    ex.extra["test"] = test
    return ex


def bidirectional(steps: int) -> Exhibit:
    r = tasks.train_bidirectional(steps=steps, baseline=False)
    d = tasks.make_bidirectional_data(0, T=6)
    loss = nn.sequence_loss(r.model(d["test_x"][:1]).o, d["test_y"][:1])
    return Exhibit("bidirectional", "Bidirectional RNN", "fig. 10.11",
                   "h runs forward, g runs backward (its square is marked t+1), and o(t) reads "
                   "both: every output sees the whole sequence.", _record(loss), _score(r))


def seq2seq(steps: int) -> Exhibit:
    r = tasks.train_seq2seq(steps=steps)
    te = tasks.make_seq2seq_data(0)["test"]
    i = int(np.argmax(te["src_len"] >= 4))
    n = te["tgt_out"].shape[1]
    out = r.model(te["src"][i:i + 1], te["src_len"][i:i + 1], te["tgt_in"][i:i + 1])
    mask = np.arange(n)[None, :] < te["tgt_len"][i:i + 1, None]
    loss = nn.sequence_loss(out.o, te["tgt_out"][i:i + 1], mask=mask)
    return Exhibit("seq2seq", "Encoder-decoder (sequence to sequence)", "fig. 10.12",
                   "the encoder loop summarises x into the context C, which conditions every "
                   "step of the decoder loop (here: reversing digit strings).", _record(loss),
                   _score(r))


def deep(kind: str, steps: int) -> Exhibit:
    r = tasks.train_deep(kind=kind, steps=steps)
    names = {"stacked": ("Deep RNN: stacked hidden layers", "fig. 10.13a",
                         "two recurrent layers h_1 and h_2, each with its own loop (W_1, W_2); "
                         "the top one feeds o."),
             "deep_transition": ("Deep RNN: an MLP in the transition", "fig. 10.13b",
                                 "h(t-1) -> z -> h(t): the recurrence passes through an extra "
                                 "hidden layer, so the loop is two nodes long."),
             "skip": ("Deep RNN: deep transition with a skip", "fig. 10.13c",
                      "as (b), plus a shortcut h(t-1) -> h(t) that shortens the gradient's "
                      "path through time.")}
    title, fig, blurb = names[kind]
    return Exhibit(f"deep_{kind}", title, fig, blurb, _chars(r.model), _score(r))


def recursive(steps: int) -> Exhibit:
    r = tasks.train_recursive(steps=steps)  # batched: one op per tree height, fast to train
    trees, y = tasks.make_recursive_data(0)["test"]
    # held out, 4 leaves paired as ((x1, x2), (x3, x4)): fig. 10.14's tree, its root centred
    i = next(i for i, t in enumerate(trees) if len(D.tree_leaves(t)) == 4 and all(
        isinstance(c, tuple) and len(D.tree_leaves(c)) == 2 for c in t))
    out = r.model(trees[i], per_node=True)  # drawn: one composition per tree node, fig. 10.14
    loss = tg.cross_entropy(out.o, tg.tensor(y[i:i + 1], name="y")).named("L")
    return Exhibit("recursive", "Recursive network over a tree", "fig. 10.14",
                   "one composition h = tanh(W [left; right] + b) shared by every internal node "
                   "of a held-out tree (leaves: h = tanh(U x + b)); folded, it is one node with "
                   "a self-loop.", _record(loss), _score(r))


def truncated(model: Any, T: int = 9, k: int = 3) -> Any:
    """The trained Elman RNN over T steps with the state detached every k steps (TBPTT)."""
    from tinygraph.nn.rnn import SequenceInput
    ids = tasks.make_char_data(0)["test"]
    x, y = ids[None, 200:200 + T], ids[None, 201:201 + T]
    seq = SequenceInput(model, x, model.input_size)
    h = tg.zeros(1, model.hidden_size)
    outs = []
    with tg.scope(model.name):
        for t in range(1, T + 1):
            with tg.step(t):
                if t > 1 and (t - 1) % k == 0:
                    h = tg.detach(h)
                h = model.cell(seq.at(t), h)
                outs.append(model.readout(h))
    return _record(nn.sequence_loss(outs, y))

