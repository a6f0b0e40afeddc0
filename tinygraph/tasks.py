"""One small task per architecture of ch. 10, each trained in seconds and scored on held-out data.

Flow: `tinygraph.data` makes the data -> a `tinygraph.nn` model records its graph per batch ->
backward (BPTT) -> `tinygraph.optim` updates -> a held-out metric says whether it LEARNED.
The demos call these functions; the tests assert each metric is well past chance.

Every task has ``make_<task>_data(seed)`` (train and held-out sets) and ``train_<arch>(steps=...,
seed=...)`` returning a `TrainResult`. `TASKS` lists them with their metric and chance level.

| task | architecture | held-out metric | chance |
|---|---|---|---|
| dynamical | DynamicalSystem | R^2 of the predicted trajectory | 0 |
| elman | RNN (every step) | bits per character (lower is better) | unigram entropy |
| last | RNN (output="last") | accuracy of the majority label | 0.5 |
| jordan | JordanRNN | free-running accuracy of the melody | 1/8 |
| bidirectional | BidirectionalRNN | per-position accuracy | 1/6 |
| seq2seq | Seq2Seq | exact-match rate of greedy reversal | ~0 |
| deep | DeepRNN (3 kinds) | bits per character | unigram entropy |
| recursive | RecursiveNN | accuracy of sum mod 3 of a tree | 1/3 |
| recall | RNN / LSTM / GRU | accuracy recalling the first symbol after k distractors | 1/4 |
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import tinygraph as tg
from tinygraph import data as D
from tinygraph import nn
from tinygraph.optim import Adam, clip_grad_norm

__all__ = ["TrainResult", "Task", "TASKS", "train_dynamical", "train_elman", "train_last",
           "train_jordan", "train_bidirectional", "train_seq2seq", "train_deep",
           "train_recursive", "make_dynamical_data", "make_char_data", "make_majority_data",
           "make_jordan_data", "make_bidirectional_data", "make_seq2seq_data",
           "make_recursive_data", "bits_per_char", "train_recall", "compare_recall",
           "make_recall_data", "open_keep_gate", "RECALL_ARCHS"]


@dataclass
class TrainResult:
    """What a ``train_<arch>`` function returns.

    Attributes
    ----------
    model : Module
        The trained model.
    history : list of float
        Training loss per step.
    metric : float
        The held-out score (`metric_name`).
    metric_name : str
    chance : float
        The score of a model that learned nothing useful.
    higher_is_better : bool
    seconds : float
        Wall-clock training time.
    extra : dict
        Task-specific numbers (e.g. a baseline).
    """

    model: Any
    history: list
    metric: float
    metric_name: str
    chance: float
    higher_is_better: bool = True
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    """A registered task: its architecture, data maker, trainer and how it is scored."""

    name: str
    arch: str
    description: str
    make_data: Callable[[int], dict]
    train: Callable[..., TrainResult]


def _fit(model: nn.Module, steps: int, lr: float, batch_loss: Callable[[int], tg.Tensor],
         clip: float = 5.0) -> tuple[list, float]:
    """Adam on ``batch_loss(step)`` for `steps` steps; returns (loss history, seconds)."""
    opt = Adam(model.parameters(), lr=lr)
    history = []
    start = time.perf_counter()
    for i in range(steps):
        opt.zero_grad()
        loss = batch_loss(i)
        loss.backward()
        clip_grad_norm(model.parameters(), clip)
        opt.step()
        history.append(float(loss.data))
    return history, time.perf_counter() - start


def _fit_last(model: nn.Module, x: np.ndarray, y: np.ndarray, steps: int, lr: float, seed: int,
              batch: int) -> tuple[list, float]:
    """`_fit` of a sequence classifier: cross-entropy of its last output on random batches."""
    rng = np.random.default_rng(seed)

    def batch_loss(i):
        idx = rng.integers(0, len(y), batch)
        return tg.cross_entropy(model(x[idx]).last, y[idx])
    return _fit(model, steps, lr, batch_loss)


def _last_accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of argmax of the last output, without recording."""
    with tg.no_grad():
        return float((model(x).last.data.argmax(-1) == y).mean())


def _accuracy(logits: list, y: np.ndarray, mask: np.ndarray | None = None) -> float:
    pred = np.stack([o.data.argmax(-1) for o in logits], axis=1)
    ok = pred == y
    return float(ok.mean() if mask is None else ok[mask].mean())


# ------------------------------------------------------------------------------------------------
# 1. dynamical system: learn the map of an unknown tanh system from its trajectories
# ------------------------------------------------------------------------------------------------

def make_dynamical_data(seed: int = 0, T: int = 20) -> dict:
    """Trajectories of a fixed 2-D tanh system: train from `seed`, held-out from seed + 1000."""
    s0, s, W, b = D.tanh_trajectories(256, T, S=2, seed=seed)
    t0, t, _, _ = D.tanh_trajectories(128, T, S=2, seed=seed + 1000)
    return {"s0": s0, "s": s, "test_s0": t0, "test_s": t, "W": W, "b": b}


def train_dynamical(steps: int = 300, seed: int = 0, lr: float = 0.05) -> TrainResult:
    """Fit `DynamicalSystem` s(t) = tanh(W s(t-1) + b) to trajectories; score: held-out R^2."""
    d = make_dynamical_data(seed)
    model = nn.DynamicalSystem(2, rng=seed)
    rng = np.random.default_rng(seed)
    T = d["s"].shape[1]

    def batch_loss(i):
        idx = rng.integers(0, len(d["s0"]), 64)
        return tg.mse_loss(tg.stack(model(d["s0"][idx], steps=T), axis=1), d["s"][idx])
    history, sec = _fit(model, steps, lr, batch_loss)
    with tg.no_grad():
        pred = np.stack([s.data for s in model(d["test_s0"], steps=T)], axis=1)
    target = d["test_s"]
    r2 = 1.0 - ((pred - target) ** 2).mean() / target.var(axis=(0, 1)).mean()
    return TrainResult(model, history, float(r2), "held-out R^2", 0.0, True, sec)


# ------------------------------------------------------------------------------------------------
# 2. Elman RNN and 7. deep RNNs: next-character prediction on the embedded corpus
# ------------------------------------------------------------------------------------------------

def make_char_data(seed: int = 0) -> dict:
    """The corpus as ids: the first 90% for training, the last 10% held out."""
    text = D.load_text("alice")
    vocab = D.CharVocab(text)
    ids = vocab.encode(text)
    cut = int(0.9 * len(ids))
    counts = np.bincount(ids[:cut], minlength=len(vocab)) + 1.0      # add-one smoothing
    p = counts / counts.sum()
    unigram = float(-(np.log2(p[ids[cut:]])).mean())                 # held-out unigram bits
    return {"vocab": vocab, "train": ids[:cut], "test": ids[cut:], "unigram_bpc": unigram}


def bits_per_char(model: nn.Module, ids: np.ndarray, chunk: int = 100) -> float:
    """Held-out bits per character, reading `ids` as one stream (state carried across chunks)."""
    x, y = ids[None, :-1], ids[None, 1:]
    total, state = 0.0, None
    with tg.no_grad():
        for s in range(0, x.shape[1], chunk):
            xs, ys = x[:, s:s + chunk], y[:, s:s + chunk]
            out = model(xs, state=state)
            state = out.state
            total += nn.sequence_loss(out.o, ys, reduction="sum").item()
    return total / (x.shape[1] * np.log(2.0))


def _train_chars(model: nn.Module, steps: int, seed: int, lr: float, T: int = 32,
                 B: int = 32) -> TrainResult:
    d = make_char_data(seed)
    rng = np.random.default_rng(seed)

    def batch_loss(i):
        x, y = D.char_windows(d["train"], B, T, rng)
        return nn.sequence_loss(model(x).o, y)
    history, sec = _fit(model, steps, lr, batch_loss)
    bpc = bits_per_char(model, d["test"])
    return TrainResult(model, history, bpc, "held-out bits/char", d["unigram_bpc"], False, sec,
                       {"uniform_bpc": float(np.log2(len(d["vocab"])))})


def train_elman(steps: int = 400, seed: int = 0, hidden: int = 32, lr: float = 0.01
                ) -> TrainResult:
    """Elman `RNN` (fig. 10.3) predicting the next character; score: held-out bits/char."""
    V = len(make_char_data(seed)["vocab"])
    return _train_chars(nn.RNN(V, hidden, V, rng=seed), steps, seed, lr)


def train_deep(kind: str = "stacked", steps: int = 400, seed: int = 0, hidden: int = 32,
               lr: float = 0.01) -> TrainResult:
    """`DeepRNN` of the given kind (fig. 10.13) on next-character prediction; bits/char."""
    V = len(make_char_data(seed)["vocab"])
    return _train_chars(nn.DeepRNN(V, hidden, V, kind=kind, rng=seed), steps, seed, lr)


# ------------------------------------------------------------------------------------------------
# 3. single output at the end: which symbol is in the majority
# ------------------------------------------------------------------------------------------------

def make_majority_data(seed: int = 0, T: int = 15) -> dict:
    x, y = D.majority(2000, T, seed=seed)
    tx, ty = D.majority(1000, T, seed=seed + 1000)
    return {"x": x, "y": y, "test_x": tx, "test_y": ty}


def train_last(steps: int = 300, seed: int = 0, hidden: int = 24, lr: float = 0.02
               ) -> TrainResult:
    """`RNN(output="last")` (fig. 10.5) labelling a whole sequence; score: held-out accuracy."""
    d = make_majority_data(seed)
    model = nn.RNN(3, hidden, 2, output="last", rng=seed)
    history, sec = _fit_last(model, d["x"], d["y"], steps, lr, seed, batch=64)
    acc = _last_accuracy(model, d["test_x"], d["test_y"])
    return TrainResult(model, history, acc, "held-out accuracy", 0.5, True, sec)


# ------------------------------------------------------------------------------------------------
# 4. output recurrence: a melody that steps up or down a ring, generated free-running
# ------------------------------------------------------------------------------------------------

def make_jordan_data(seed: int = 0, T: int = 20, K: int = 8) -> dict:
    x, y0, y = D.ring_walk(1000, T, K, seed=seed)
    tx, ty0, ty = D.ring_walk(500, T, K, seed=seed + 1000)
    return {"x": x, "y0": y0, "y": y, "test_x": tx, "test_y0": ty0, "test_y": ty, "K": K}


def train_jordan(steps: int = 300, seed: int = 0, hidden: int = 32, lr: float = 0.02
                 ) -> TrainResult:
    """`JordanRNN` (fig. 10.4) trained with teacher forcing (fig. 10.6), scored running free.

    Score: accuracy of the notes it generates from its own fed-back outputs on held-out control
    sequences (extra: the teacher-forced accuracy and the rate of fully correct melodies).
    """
    d = make_jordan_data(seed)
    K = d["K"]
    model = nn.JordanRNN(2, hidden, K, rng=seed)
    rng = np.random.default_rng(seed)

    def batch_loss(i):
        idx = rng.integers(0, len(d["y"]), 64)
        out = model(d["x"][idx], y0=d["y0"][idx], y=d["y"][idx], mode="teacher")
        return nn.sequence_loss(out.o, d["y"][idx])
    history, sec = _fit(model, steps, lr, batch_loss)
    with tg.no_grad():
        free = model(d["test_x"], y0=d["test_y0"], mode="free")
        forced = model(d["test_x"], y0=d["test_y0"], y=d["test_y"], mode="teacher")
    pred = np.stack([t.data for t in free.tokens], axis=1)
    acc = float((pred == d["test_y"]).mean())
    return TrainResult(model, history, acc, "held-out free-running accuracy", 1.0 / K, True, sec,
                       {"teacher_forced_accuracy": _accuracy(forced.o, d["test_y"]),
                        "whole_melody_rate": float((pred == d["test_y"]).all(1).mean())})


# ------------------------------------------------------------------------------------------------
# 5. bidirectional: copy the left or right neighbour
# ------------------------------------------------------------------------------------------------

def make_bidirectional_data(seed: int = 0, T: int = 12, K: int = 6) -> dict:
    x, y = D.neighbour_copy(2000, T, K, seed=seed)
    tx, ty = D.neighbour_copy(500, T, K, seed=seed + 1000)
    return {"x": x, "y": y, "test_x": tx, "test_y": ty, "K": K}


def train_bidirectional(steps: int = 300, seed: int = 0, hidden: int = 24, lr: float = 0.02,
                        baseline: bool = True) -> TrainResult:
    """`BidirectionalRNN` (fig. 10.11) labelling each position from both neighbours; accuracy.

    With `baseline`, a forward-only `RNN` of twice the hidden size gets the same training; its
    accuracy (in ``extra``) shows what seeing the future adds.
    """
    d = make_bidirectional_data(seed)
    K = d["K"]
    result = None
    models = [("bidirectional", nn.BidirectionalRNN(K, hidden, K, rng=seed))]
    if baseline:
        models.append(("forward_only", nn.RNN(K, 2 * hidden, K, rng=seed)))
    for name, model in models:
        rng = np.random.default_rng(seed)

        def batch_loss(i, model=model, rng=rng):
            idx = rng.integers(0, len(d["y"]), 64)
            return nn.sequence_loss(model(d["x"][idx]).o, d["y"][idx])
        history, sec = _fit(model, steps, lr, batch_loss)
        with tg.no_grad():
            acc = _accuracy(model(d["test_x"]).o, d["test_y"])
        if result is None:
            result = TrainResult(model, history, acc, "held-out accuracy", 1.0 / K, True, sec)
        else:
            result.extra["forward_only_accuracy"] = acc
    return result


# ------------------------------------------------------------------------------------------------
# 6. encoder-decoder: reverse a digit string of variable length
# ------------------------------------------------------------------------------------------------

def make_seq2seq_data(seed: int = 0, max_len: int = 5, digits: int = 5) -> dict:
    train = D.reverse_pairs(3000, 1, max_len, digits, seed=seed)
    test = D.reverse_pairs(500, 1, max_len, digits, seed=seed + 1000)
    return {"train": train, "test": test, "vocab": digits + 3, "max_len": max_len}


def train_seq2seq(steps: int = 600, seed: int = 0, hidden: int = 48, lr: float = 0.01
                  ) -> TrainResult:
    """`Seq2Seq` (fig. 10.12) reversing strings; score: exact-match rate of greedy decoding."""
    d = make_seq2seq_data(seed)
    V, tr = d["vocab"], d["train"]
    model = nn.Seq2Seq(V, V, hidden, rng=seed)
    rng = np.random.default_rng(seed)
    steps_out = tr["tgt_out"].shape[1]

    def batch_loss(i):
        idx = rng.integers(0, len(tr["src"]), 64)
        mask = np.arange(steps_out)[None, :] < tr["tgt_len"][idx, None]
        out = model(tr["src"][idx], tr["src_len"][idx], tr["tgt_in"][idx])
        return nn.sequence_loss(out.o, tr["tgt_out"][idx], mask=mask)
    history, sec = _fit(model, steps, lr, batch_loss)
    te = d["test"]
    pred = model.greedy(te["src"], te["src_len"], D.synthetic.BOS, D.synthetic.EOS, steps_out)
    exact = float((pred == te["tgt_out"]).all(1).mean())
    mask = np.arange(steps_out)[None, :] < te["tgt_len"][:, None]
    token = float((pred == te["tgt_out"])[mask].mean())
    return TrainResult(model, history, exact, "held-out exact-match rate",
                       float(np.mean(1.0 / d["vocab"] ** te["tgt_len"])), True, sec,
                       {"token_accuracy": token})


# ------------------------------------------------------------------------------------------------
# 8. recursive: evaluate the sum mod 3 of a tree's leaves
# ------------------------------------------------------------------------------------------------

def make_recursive_data(seed: int = 0, K: int = 3) -> dict:
    """Trees over digits 0..K-1 labelled with their sum mod K.

    ``stages`` hold the training sets of a curriculum (Bengio et al., 2009): trees of 2 leaves,
    then up to 3, then 2 to 6; ``test`` is 2 to 6 leaves and ``larger`` 7 to 10 (never seen).
    """
    stages = [D.expression_trees(1000, 2, 2, K=K, seed=seed + 1),
              D.expression_trees(2000, 2, 3, K=K, seed=seed + 2),
              D.expression_trees(3000, 2, 6, K=K, seed=seed)]
    return {"stages": stages, "test": D.expression_trees(500, 2, 6, K=K, seed=seed + 1000),
            "larger": D.expression_trees(500, 7, 10, K=K, seed=seed + 2000), "K": K}


def train_recursive(steps: int = 600, seed: int = 0, hidden: int = 32, lr: float = 0.02
                    ) -> TrainResult:
    """`RecursiveNN` (fig. 10.14) evaluating trees bottom-up; score: held-out accuracy.

    Trained on a curriculum: the composition first learns the sum of two leaves (the first
    quarter of the steps), then of small trees, then of trees up to 6 leaves. Without it, the
    shared composition sits for a long while at chance. Extra: accuracy on larger trees.
    """
    d = make_recursive_data(seed)
    K = d["K"]
    model = nn.RecursiveNN(K, hidden, K, rng=seed)
    rng = np.random.default_rng(seed)

    def batch_loss(i):
        trees, y = d["stages"][min(2, 4 * i // max(steps, 1))]
        idx = rng.integers(0, len(y), 64)
        return tg.cross_entropy(model([trees[j] for j in idx]).o, y[idx])
    history, sec = _fit(model, steps, lr, batch_loss)
    with tg.no_grad():
        acc = [float((model(t).o.data.argmax(-1) == y).mean()) for t, y in (d["test"], d["larger"])]
    return TrainResult(model, history, acc[0], "held-out accuracy", 1.0 / K, True, sec,
                       {"larger_trees_accuracy": acc[1]})


# ------------------------------------------------------------------------------------------------
# 9. long-range memory: recall the first symbol after k distractors, RNN vs LSTM vs GRU
# ------------------------------------------------------------------------------------------------

RECALL_ARCHS = ("RNN", "LSTM", "GRU")


def make_recall_data(seed: int = 0, k: int = 15, K: int = 4, distractors: int = 4) -> dict:
    """Training sequences at lag k; held-out sets at lags k, 2k and 4k (``test[lag]``)."""
    x, y = D.recall_first(2000, k, K, distractors, seed=seed)
    test = {lag: D.recall_first(500, lag, K, distractors, seed=seed + 1000 + lag)
            for lag in (k, 2 * k, 4 * k)}
    return {"x": x, "y": y, "test": test, "K": K, "vocab": K + distractors, "k": k}


def open_keep_gate(model: nn.Module, bias: float) -> None:
    """Add `bias` to the keep gate of a gated cell: the LSTM's forget gate f, the GRU's update
    gate z (block 1 of PyTorch's gate order in both), so the state is carried from the start.

    The LSTM's forget-gate bias (Gers et al., 2000; +1 in Jozefowicz et al., 2015; "chrono"
    initialisation, Tallec & Ollivier, 2018, about log of the lag) is the usual remedy for an
    LSTM that otherwise forgets at the rate of a half per step at initialisation.
    """
    H = model.hidden_size
    model.cell.bias_ih.data[H:2 * H] += bias


def train_recall(arch: str = "LSTM", steps: int = 300, seed: int = 0, k: int = 15,
                 hidden: int = 16, lr: float = 0.02, keep_bias: float = 3.0) -> TrainResult:
    """`RNN`, `LSTM` or `GRU` (``output="last"``) recalling the first of k + 1 symbols.

    The loss sits at the last step, so the symbol's only way to the output is through every
    state; trained at lag k, each model is scored on held-out sequences at lags k, 2k and 4k
    (``extra["accuracy_by_lag"]``): a vanilla RNN's memory fades or is overwritten by the
    distractors, the gated cells' is kept by their keep gates (`open_keep_gate` with
    `keep_bias`; 0 leaves PyTorch's initialisation). Score: held-out accuracy at lag k.
    """
    if arch not in RECALL_ARCHS:
        raise ValueError(f"train_recall: arch must be one of {RECALL_ARCHS}, got {arch!r}")
    d = make_recall_data(seed, k)
    model = getattr(nn, arch)(d["vocab"], hidden, d["K"], output="last", rng=seed,
                              name=arch.lower())
    if arch != "RNN" and keep_bias:
        open_keep_gate(model, keep_bias)
    history, sec = _fit_last(model, d["x"], d["y"], steps, lr, seed, batch=32)
    acc = {lag: _last_accuracy(model, x, y) for lag, (x, y) in d["test"].items()}
    return TrainResult(model, history, acc[k], "held-out accuracy", 1.0 / d["K"], True, sec,
                       {"accuracy_by_lag": acc, "keep_bias": keep_bias if arch != "RNN" else None})


def compare_recall(steps: int = 300, seed: int = 0, k: int = 15, **kwargs: Any
                   ) -> dict[str, TrainResult]:
    """`train_recall` for each of RNN, LSTM, GRU with the same data, seed and budget."""
    return {arch: train_recall(arch, steps=steps, seed=seed, k=k, **kwargs)
            for arch in RECALL_ARCHS}


TASKS: dict[str, Task] = {t.name: t for t in [
    Task("dynamical", "DynamicalSystem", "learn the map of a 2-D tanh system",
         make_dynamical_data, train_dynamical),
    Task("elman", "RNN", "next-character prediction", make_char_data, train_elman),
    Task("last", "RNN(output='last')", "majority label of a sequence", make_majority_data,
         train_last),
    Task("jordan", "JordanRNN", "generate a melody on a ring, free-running", make_jordan_data,
         train_jordan),
    Task("bidirectional", "BidirectionalRNN", "copy the left or right neighbour",
         make_bidirectional_data, train_bidirectional),
    Task("seq2seq", "Seq2Seq", "reverse a digit string", make_seq2seq_data, train_seq2seq),
    Task("deep", "DeepRNN", "next-character prediction, stacked / deep transition / skip",
         make_char_data, train_deep),
    Task("recursive", "RecursiveNN", "sum mod 3 of a tree's leaves", make_recursive_data,
         train_recursive),
    Task("recall", "RNN / LSTM / GRU", "recall the first symbol after k distractors",
         make_recall_data, train_recall),
]}
