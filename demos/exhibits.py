"""The gallery's exhibits: train each architecture of ch. 10 briefly, then record one small batch.

Flow: tinygraph.tasks (data + training) -> a short held-out pass with ``backward(keep_grads=True)``
-> ``tg.trace`` -> viz figures (demos.gallery writes them, demos.page lists them).

Each exhibit returns the traced graph of a *short* sequence (so the unfolded figure is readable)
from a model that has learned its task, with the held-out score that says so.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import tinygraph as tg
from tinygraph import data as D
from tinygraph import nn, tasks


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


def _record(loss: tg.Tensor) -> Any:
    loss.backward(keep_grads=True)
    return tg.trace(loss)


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


def _chars(model: Any, T: int = 6) -> tg.Tensor:
    ids = tasks.make_char_data(0)["test"]
    x, y = ids[None, 100:100 + T], ids[None, 101:101 + T]
    return nn.sequence_loss(model(x).o, y)


def elman(steps: int) -> Exhibit:
    r = tasks.train_elman(steps=steps)
    ex = Exhibit("elman", "Elman RNN (hidden-to-hidden recurrence)", "fig. 10.3",
                 "h(t) = tanh(W h(t-1) + U x(t) + b), o(t) = V h(t) + c, a loss at every step: "
                 "the loop through the black square is W.", _record(_chars(r.model)), _score(r),
                 op_level=True)
    ex.extra["model"] = r.model
    return ex


def single_output(steps: int) -> Exhibit:
    r = tasks.train_last(steps=steps)
    d = tasks.make_majority_data(0, T=6)
    out = r.model(d["test_x"][:1])
    loss = tg.cross_entropy(out.last, d["test_y"][:1]).named("L")
    return Exhibit("single_output", "RNN with a single output", "fig. 10.5",
                   "reads the whole sequence and answers once at the end (majority label): the "
                   "only loss sits on the last step.", _record(loss), _score(r))


def jordan(steps: int) -> Exhibit:
    r = tasks.train_jordan(steps=steps)
    d = tasks.make_jordan_data(0)
    out = r.model(d["test_x"][:1, :6], y0=d["test_y0"][:1], y=d["test_y"][:1, :6],
                  mode="teacher")
    loss = nn.sequence_loss(out.o, d["test_y"][:1, :6])
    return Exhibit("jordan", "Output recurrence, trained with teacher forcing", "figs. 10.4, 10.6",
                   "the only recurrence is from the output: during training the true y(t-1) is "
                   "fed into h(t) through R (teacher forcing).", _record(loss), _score(r))


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
                         "two recurrent layers, each with its own loop W; the top one feeds o."),
             "deep_transition": ("Deep RNN: an MLP in the transition", "fig. 10.13b",
                                 "h(t-1) -> z -> h(t): the recurrence passes through an extra "
                                 "hidden layer, so the loop is two nodes long."),
             "skip": ("Deep RNN: deep transition with a skip", "fig. 10.13c",
                      "as (b), plus a shortcut h(t-1) -> h(t) that shortens the gradient's "
                      "path through time.")}
    title, fig, blurb = names[kind]
    return Exhibit(f"deep_{kind}", title, fig, blurb, _record(_chars(r.model)), _score(r))


def recursive(steps: int) -> Exhibit:
    r = tasks.train_recursive(steps=steps)  # batched: one op per tree height, fast to train
    trees, y = tasks.make_recursive_data(0)["test"]
    i = next(i for i, t in enumerate(trees) if len(D.tree_leaves(t)) == 6)  # held out
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


BUILDERS: list[tuple[str, Callable[[int], Exhibit], int]] = [
    ("elman", elman, 400),
    ("single_output", single_output, 300),
    ("jordan", jordan, 300),
    ("bidirectional", bidirectional, 300),
    ("seq2seq", seq2seq, 600),
    ("deep_stacked", lambda s: deep("stacked", s), 300),
    ("deep_deep_transition", lambda s: deep("deep_transition", s), 300),
    ("deep_skip", lambda s: deep("skip", s), 300),
    ("recursive", recursive, 600),
    ("dynamical", dynamical, 300),
]
