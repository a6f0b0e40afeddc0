"""Synthetic sequence and tree tasks, each chosen so one architecture of ch. 10 is good at it.

Flow: `tinygraph.tasks` calls these generators for training and held-out data. Plain numpy,
seeded (an int seed or a numpy Generator), deterministic.

| generator | what must be learned | architecture |
|---|---|---|
| `tanh_trajectories` | the map s(t-1) -> s(t) of an unknown tanh system | DynamicalSystem |
| `majority` | which of two symbols is more frequent: needs the whole sequence | RNN(output="last") |
| `ring_walk` | a melody that steps up or down a ring as a control input says | JordanRNN |
| `neighbour_copy` | copy the left or the right neighbour: needs past and future | BidirectionalRNN |
| `reverse_pairs` | reverse a digit string of variable length, then stop | Seq2Seq |
| `expression_trees` | the sum mod K of a tree's leaves, composed bottom-up | RecursiveNN |
| `recall_first` | the first symbol, after k distractors: a long-range dependency | LSTM, GRU vs RNN |

Trees are nested tuples: a leaf is an int, an internal node a 2-tuple ``(left, right)``. The
helpers here walk them with an explicit stack (no recursion).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

PAD, BOS, EOS = 0, 1, 2          # special tokens of `reverse_pairs`; digits start at 3


def _rng(seed: Any) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def tanh_trajectories(n: int, T: int, S: int = 2, seed: Any = 0, system_seed: int = 0
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Trajectories of s(t) = tanh(W s(t-1) + b) (eq. 10.1) from random initial states.

    W is a rotation by a random angle scaled by 1.2, so the trajectories spiral onto a cycle.
    The system depends only on `system_seed`, so train and held-out sets share it.

    Returns
    -------
    s0 : (n, S) initial states; s : (n, T, S) the states s(1)..s(T); W (S, S); b (S,).
    """
    srng = np.random.default_rng(system_seed)
    q, _ = np.linalg.qr(srng.standard_normal((S, S)))
    theta = srng.uniform(0.3, 0.6)
    rot = np.eye(S)
    rot[:2, :2] = [[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]
    W = 1.2 * q @ rot @ q.T
    b = srng.normal(0, 0.1, S)
    s0 = _rng(seed).uniform(-1, 1, (n, S))
    s = np.empty((n, T, S))
    prev = s0
    for t in range(T):
        prev = np.tanh(prev @ W.T + b)
        s[:, t] = prev
    return s0, s, W, b


def majority(n: int, T: int, seed: Any = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sequences over {0: 'a', 1: 'b', 2: 'c'}; label 1 when 'a' occurs more often than 'b'.

    Ties are redrawn, so the label is always defined and needs every position.

    Returns
    -------
    x : (n, T) int; y : (n,) int in {0, 1}.
    """
    rng = _rng(seed)
    x = rng.integers(0, 3, size=(n, T))
    while True:
        tie = (x == 0).sum(1) == (x == 1).sum(1)
        if not tie.any():
            break
        x[tie] = rng.integers(0, 3, size=(int(tie.sum()), T))
    y = ((x == 0).sum(1) > (x == 1).sum(1)).astype(np.int64)
    return x, y


def recall_first(n: int, k: int, K: int = 4, distractors: int = 4, seed: Any = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A symbol in [0, K), then k distractors in [K, K + distractors); the label is the symbol.

    Read with one output at the end, the only way to the label is a gradient that travels
    back over all k + 1 steps: vanilla RNNs lose it as k grows, gated cells keep it.

    Returns
    -------
    x : (n, k + 1) int in [0, K + distractors); y : (n,) int in [0, K).
    """
    rng = _rng(seed)
    y = rng.integers(0, K, n)
    x = np.concatenate([y[:, None], rng.integers(K, K + distractors, (n, k))], axis=1)
    return x, y


def ring_walk(n: int, T: int, K: int = 8, seed: Any = 0
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A melody on a ring of K notes: y(t) = y(t-1) + 1 if the control x(t) is 1, else - 1.

    The next note depends on the previous note, which only an output recurrence (or a hidden
    state) can supply.

    Returns
    -------
    x : (n, T) int controls in {0, 1}; y0 : (n,) int start notes; y : (n, T) int notes y(1..T).
    """
    rng = _rng(seed)
    x = rng.integers(0, 2, size=(n, T))
    y0 = rng.integers(0, K, size=n)
    y = (y0[:, None] + np.cumsum(2 * x - 1, axis=1)) % K
    return x, y0, y.astype(np.int64)


def neighbour_copy(n: int, T: int, K: int = 6, seed: Any = 0) -> tuple[np.ndarray, np.ndarray]:
    """Label y(t) = x(t-1) when x(t) is even, else x(t+1) (0 past either end).

    A forward-only network cannot know x(t+1), so it is right only about half the time more
    than chance; a bidirectional one sees both neighbours.

    Returns
    -------
    x, y : (n, T) int in [0, K).
    """
    rng = _rng(seed)
    x = rng.integers(0, K, size=(n, T))
    padded = np.pad(x, ((0, 0), (1, 1)))
    left, right = padded[:, :-2], padded[:, 2:]
    y = np.where(x % 2 == 0, left, right)
    return x, y.astype(np.int64)


def reverse_pairs(n: int, min_len: int = 2, max_len: int = 6, digits: int = 6, seed: Any = 0
                  ) -> dict[str, np.ndarray]:
    """Digit strings of variable length and their reversals, padded, for encoder-decoder.

    Tokens: PAD=0, BOS=1, EOS=2, digits 3..digits+2. The target is the reversed string followed
    by EOS, so output and input lengths differ.

    Returns
    -------
    dict with ``src`` (n, max_len) padded input, ``src_len`` (n,), ``tgt_in`` (n, max_len+1)
    = BOS + reversed (decoder inputs for teacher forcing), ``tgt_out`` (n, max_len+1) = reversed +
    EOS, ``tgt_len`` (n,) = src_len + 1; padding is PAD everywhere.
    """
    if not 1 <= min_len <= max_len:
        raise ValueError(f"reverse_pairs: need 1 <= min_len <= max_len, got {min_len}, {max_len}")
    rng = _rng(seed)
    lens = rng.integers(min_len, max_len + 1, size=n)
    src = np.full((n, max_len), PAD, dtype=np.int64)
    tgt_in = np.full((n, max_len + 1), PAD, dtype=np.int64)
    tgt_out = np.full((n, max_len + 1), PAD, dtype=np.int64)
    body = rng.integers(3, 3 + digits, size=(n, max_len))
    for i, L in enumerate(lens):
        src[i, :L] = body[i, :L]
        rev = body[i, :L][::-1]
        tgt_in[i, 0] = BOS
        tgt_in[i, 1:L + 1] = rev
        tgt_out[i, :L] = rev
        tgt_out[i, L] = EOS
    return {"src": src, "src_len": lens.astype(np.int64), "tgt_in": tgt_in, "tgt_out": tgt_out,
            "tgt_len": (lens + 1).astype(np.int64)}


def random_tree(leaves: list, rng: np.random.Generator) -> Any:
    """A random binary tree over `leaves` (in order): merge random adjacent pairs until one is left."""
    nodes = list(leaves)
    while len(nodes) > 1:
        i = int(rng.integers(0, len(nodes) - 1))
        nodes[i:i + 2] = [(nodes[i], nodes[i + 1])]
    return nodes[0]


def balanced_tree(leaves: list) -> Any:
    """A balanced binary tree over `leaves`: depth ceil(log2(len(leaves))), the seed's O(log tau).

    Examples
    --------
    >>> balanced_tree([1, 2, 3, 4, 5])
    (((1, 2), (3, 4)), 5)
    """
    nodes = list(leaves)
    if not nodes:
        raise ValueError("balanced_tree: need at least one leaf")
    while len(nodes) > 1:
        paired = [(nodes[i], nodes[i + 1]) for i in range(0, len(nodes) - 1, 2)]
        if len(nodes) % 2:
            paired.append(nodes[-1])
        nodes = paired
    return nodes[0]


def tree_leaves(tree: Any) -> list:
    """The leaves of a nested-tuple tree, left to right (explicit stack, no recursion)."""
    out, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, tuple):
            stack.extend(reversed(node))
        else:
            out.append(node)
    return out


def tree_depth(tree: Any) -> int:
    """Number of internal levels on the longest root-to-leaf path (a single leaf has depth 0)."""
    best, stack = 0, [(tree, 0)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, tuple):
            stack.extend((child, d + 1) for child in node)
        else:
            best = max(best, d)
    return best


def expression_trees(n: int, min_leaves: int = 2, max_leaves: int = 6, K: int = 3,
                     seed: Any = 0, balanced: bool = False) -> tuple[list, np.ndarray]:
    """Random trees over digits 0..K-1; the label is the sum of the leaves mod K.

    Evaluating the sum bottom-up is what a recursive network's shared composition can learn.

    Returns
    -------
    trees : list of nested tuples; y : (n,) int labels.
    """
    rng = _rng(seed)
    trees, labels = [], []
    for _ in range(n):
        m = int(rng.integers(min_leaves, max_leaves + 1))
        leaves = [int(v) for v in rng.integers(0, K, size=m)]
        trees.append(balanced_tree(leaves) if balanced else random_tree(leaves, rng))
        labels.append(sum(leaves) % K)
    return trees, np.asarray(labels, dtype=np.int64)


def ceil_log2(n: int) -> int:
    """ceil(log2 n) for n >= 1: the depth of `balanced_tree` over n leaves."""
    return math.ceil(math.log2(n)) if n > 1 else 0
