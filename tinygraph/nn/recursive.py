"""The recursive neural network (fig. 10.14): one composition applied over a tree, bottom-up.

Flow: `RecursiveNN(...)(trees)` flattens the trees with an explicit stack (no recursion), then
either (batched, the default, fast for training) computes all nodes of the same height at once:
leaves inside ``tg.step(0)``, internal nodes of height k inside ``tg.step(k)``; or (``per_node``,
for drawing) records one composition per tree node, in post-order, each inside ``tg.step`` of
its height, so the recorded graph *is* the tree of fig. 10.14 and viz draws it as one. Either
way the unfolded graph is as deep as the tree: a balanced tree over tau leaves takes
ceil(log2 tau) steps where a chain takes tau (the seed's O(log tau)).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

import tinygraph as tg
from tinygraph.tensor import Tensor

from tinygraph.data.synthetic import balanced_tree, tree_depth  # noqa: F401  (re-exported)

from .loop import add_output, output
from .module import Module, Transposed, init_uniform, who
from .rnn import make_rng


@dataclass
class TreeOutput:
    """Output of `RecursiveNN`: o (B, K) at the roots, root states (B, H), and levels.

    Batched: ``levels[k]`` is the (n_k, H) tensor of all nodes of height k (k = 0: leaves) and
    ``nodes`` is None. Per node: ``levels[k]`` is the list of the (H,) states of height k and
    ``nodes`` every node's (H,) state, in post-order (left to right, children first).
    """

    o: Tensor | None
    root: Tensor
    levels: list
    depth: list
    nodes: list | None = None


@dataclass
class _Flat:
    """Trees flattened: per node its height, children (global ids) or leaf symbol."""

    height: list
    left: list
    right: list
    symbol: list
    roots: list


class RecursiveNN(Module):
    """Recursive network over binary trees given as nested tuples (fig. 10.14).

    leaf:      h = tanh(b + U x)              (x one-hot of the leaf's symbol)
    internal:  h = tanh(b + W [h_left; h_right])
    root:      o = c + V h_root

    The same U, W, V are used at every node, whatever the tree's shape. `balanced_tree` builds
    the tree of depth ceil(log2 tau) over tau leaves (the seed's O(log tau) depth).

    Parameters
    ----------
    input_size : int
        Number of leaf symbols; a leaf is an int in [0, input_size).
    hidden_size : int
    output_size : int, optional
        K; None for root states only.
    rng, dtype, name : see `RNN`.
    per_node : bool
        Default mode of `forward`: False batches every height into one op per step (fast,
        for training); True records one composition per tree node (the book's tree, for
        drawing). Same parameters, same numbers and gradients.

    Examples
    --------
    >>> net = RecursiveNN(3, 8, 3, rng=0)
    >>> out = net([((0, 1), 2), (2, 2)])
    >>> out.o.shape, out.depth
    ((2, 3), [2, 1])
    >>> len(net(((0, 1), 2), per_node=True).nodes)    # 3 leaves + 2 internal nodes
    5
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int | None = None,
                 rng: Any = None, dtype: Any = np.float64, name: str | None = None,
                 per_node: bool = False) -> None:
        super().__init__(name or "recursive")
        self.per_node = bool(per_node)
        r = make_rng(rng)
        H = hidden_size
        self.input_size, self.hidden_size, self.output_size = input_size, H, output_size
        self.U = self.param("U", init_uniform(r, (H, input_size), H, dtype))
        self.W = self.param("W", init_uniform(r, (H, 2 * H), 2 * H, dtype))
        self.b = self.param("b", init_uniform(r, (H,), H, dtype))
        if output_size is not None:
            add_output(self, r, output_size, H, dtype)

    def _flatten(self, trees: Sequence[Any]) -> _Flat:
        """Post-order walk of every tree with an explicit stack; validates the form."""
        f = _Flat([], [], [], [], [])
        for i, tree in enumerate(trees):
            stack = [(tree, (), False)]
            done: list[int] = []                  # ids of finished subtrees, in order
            while stack:
                node, path, expanded = stack.pop()
                if isinstance(node, tuple):
                    if len(node) != 2:
                        raise ValueError(f"{who(self)}: tree {i}: node at path {path} has "
                                         f"{len(node)} children; expected a 2-tuple "
                                         f"(left, right) or an int leaf")
                    if not expanded:
                        stack.append((node, path, True))
                        stack.append((node[1], path + (1,), False))
                        stack.append((node[0], path + (0,), False))
                        continue
                    right, left = done.pop(), done.pop()
                    f.height.append(1 + max(f.height[left], f.height[right]))
                    f.left.append(left), f.right.append(right), f.symbol.append(-1)
                else:
                    if isinstance(node, (bool, np.bool_)) or not isinstance(node, (int, np.integer)):
                        raise ValueError(f"{who(self)}: tree {i}: node at path {path} is a "
                                         f"{type(node).__name__} ({node!r}); expected an int "
                                         f"leaf in [0, {self.input_size}) or a 2-tuple")
                    if not 0 <= node < self.input_size:
                        raise ValueError(f"{who(self)}: tree {i}: leaf at path {path} is {node}; "
                                         f"expected a symbol in [0, {self.input_size})")
                    f.height.append(0)
                    f.left.append(-1), f.right.append(-1), f.symbol.append(int(node))
                done.append(len(f.height) - 1)
            f.roots.append(done[0])
        return f

    def forward(self, trees: Any, per_node: bool | None = None) -> TreeOutput:
        """Compose every tree bottom-up.

        Parameters
        ----------
        trees : tree or list of trees
            A tree is an int leaf or a 2-tuple (left, right) of trees.
        per_node : bool, optional
            Record one composition per node (True) or one per height (False); None takes the
            module's default. Both give the same numbers.

        Returns
        -------
        TreeOutput
        """
        if isinstance(trees, (tuple, int, np.integer)):
            trees = [trees]
        if not isinstance(trees, list) or not trees:
            raise ValueError(f"{who(self)}: expected a tree (nested 2-tuples of int leaves) or a "
                             f"non-empty list of trees, got {type(trees).__name__}")
        f = self._flatten(trees)
        if self.per_node if per_node is None else per_node:
            return self._per_node(f)
        height = np.asarray(f.height)
        left, right, symbol = np.asarray(f.left), np.asarray(f.right), np.asarray(f.symbol)
        # row of each node inside the table of all levels computed so far (levels in order)
        order = np.argsort(height, kind="stable")
        row = np.empty(len(height), dtype=np.int64)
        row[order] = np.arange(len(height))
        levels: list[Tensor] = []
        table: Tensor | None = None
        for k in range(int(height.max()) + 1):
            ids = np.flatnonzero(height == k)
            with tg.step(k):
                if k == 0:
                    x = tg.tensor(symbol[ids], name="x")
                    h = tg.tanh(tg.embedding(self.U.T, x) + self.b).named("h")     # (n0, H)
                else:
                    hl = table[row[left[ids]]]                                      # (nk, H)
                    hr = table[row[right[ids]]]                                     # (nk, H)
                    hc = tg.concat([hl, hr], axis=1)                                # (nk, 2H)
                    h = tg.tanh(hc @ self.W.T + self.b).named("h")                  # (nk, H)
            levels.append(h)
            table = h if table is None else tg.concat([table, h], axis=0)
        root = table[row[np.asarray(f.roots)]]                                      # (B, H)
        o = None if self.output_size is None else output(self, root)
        return TreeOutput(o=o, root=root, levels=levels,
                          depth=[int(height[r]) for r in f.roots])

    def _per_node(self, f: _Flat) -> TreeOutput:
        """One composition per node, in post-order (children before parents, leaves left to
        right), each inside ``tg.step(height)``; named x (leaf symbol) and h (state)."""
        UT, WT = Transposed(self.U), Transposed(self.W)   # once, or per node (per_step_copies)
        h: list[Tensor] = []
        levels: list[list[Tensor]] = [[] for _ in range(max(f.height) + 1)]
        for i, k in enumerate(f.height):
            with tg.step(k):
                if k == 0:
                    x = tg.tensor(np.int64(f.symbol[i]), name="x")
                    hi = tg.tanh(tg.embedding(UT(), x) + self.b).named("h")           # (H,)
                else:
                    hc = tg.concat([h[f.left[i]], h[f.right[i]]], axis=0)          # (2H,)
                    hi = tg.tanh(hc @ WT() + self.b).named("h")                       # (H,)
            h.append(hi)
            levels[k].append(hi)
        root = tg.stack([h[r] for r in f.roots], axis=0)                            # (B, H)
        o = None if self.output_size is None else output(self, root)
        return TreeOutput(o=o, root=root, levels=levels,
                          depth=[f.height[r] for r in f.roots], nodes=h)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, {self.output_size}"
