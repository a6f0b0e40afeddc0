"""Embedded data: a small public-domain corpus and synthetic sequence tasks. No downloads.

Flow: `tinygraph.tasks` (and the demos) draw their training and held-out data from here, then
feed it to `tinygraph.nn` models. Everything here is plain numpy; nothing is recorded.

The corpus is the opening of *Alice's Adventures in Wonderland* (Lewis Carroll, 1865; public
domain), written down from memory, so small differences from the printed text may remain.
"""
from __future__ import annotations

from importlib import resources

import numpy as np

from .synthetic import (expression_trees, majority, neighbour_copy, recall_first, reverse_pairs,
                        ring_walk, tanh_trajectories, tree_leaves, tree_depth, balanced_tree)

__all__ = ["load_text", "CharVocab", "char_windows", "expression_trees", "majority",
           "neighbour_copy", "recall_first", "reverse_pairs", "ring_walk", "tanh_trajectories", "tree_leaves",
           "tree_depth", "balanced_tree", "CORPORA"]

CORPORA = ("alice",)


def load_text(name: str = "alice") -> str:
    """The text of a shipped corpus.

    Parameters
    ----------
    name : str
        One of `CORPORA`.

    Returns
    -------
    str

    Examples
    --------
    >>> load_text()[:22]
    'CHAPTER I. Down the Ra'
    """
    if name not in CORPORA:
        raise ValueError(f"load_text: unknown corpus {name!r}; expected one of {CORPORA}")
    return resources.files(__package__).joinpath(f"{name}.txt").read_text(encoding="utf-8")


class CharVocab:
    """Character vocabulary of a text: ids are positions in the sorted set of its characters.

    Examples
    --------
    >>> v = CharVocab("abca")
    >>> v.encode("cab").tolist(), v.decode([0, 1])
    ([2, 0, 1], 'ab')
    """

    def __init__(self, text: str) -> None:
        self.chars = sorted(set(text))
        self.index = {ch: i for i, ch in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """Ids of the characters of `text` (int64)."""
        try:
            return np.fromiter((self.index[ch] for ch in text), dtype=np.int64, count=len(text))
        except KeyError as e:
            raise ValueError(f"CharVocab.encode: character {e.args[0]!r} is not in the "
                             f"vocabulary of {len(self)} characters") from None

    def decode(self, ids) -> str:
        """The text of a sequence of ids."""
        ids = np.asarray(ids).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            raise ValueError(f"CharVocab.decode: ids must lie in [0, {len(self)}), got "
                             f"[{ids.min()}, {ids.max()}]")
        return "".join(self.chars[i] for i in ids)


def char_windows(ids: np.ndarray, batch: int, length: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random windows for next-character prediction: inputs x (B, T) and targets y = x shifted.

    Parameters
    ----------
    ids : ndarray of int, shape (N,)
    batch, length : int
        B windows of T characters each; N must be at least T + 1.
    rng : numpy Generator

    Returns
    -------
    x, y : ndarray of int, shape (B, T); ``y[:, t] == ids[start + t + 1]``.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1 or len(ids) < length + 1:
        raise ValueError(f"char_windows: need a 1-D id array of at least {length + 1} ids, "
                         f"got shape {ids.shape}")
    starts = rng.integers(0, len(ids) - length, size=batch)
    idx = starts[:, None] + np.arange(length + 1)[None, :]
    win = ids[idx]                                                # (B, T+1)
    return win[:, :-1], win[:, 1:]
