"""Linear and Embedding: the two feed-forward pieces the recurrent modules are built from.

Flow: called inside a parent module's scope, so their ops read ``decoder/out/matmul``.
Weights follow PyTorch's orientation (out_features, in_features) and the book's names.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import tinygraph as tg
from tinygraph.tensor import Tensor

from .module import Module, check_ids, init_uniform, who


class Linear(Module):
    """Affine map ``y = x W^T + b`` over the last axis.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
    rng : int or numpy Generator, optional
        Seed of the U(-1/sqrt(in), 1/sqrt(in)) initialisation.
    weight_name, bias_name : str
        Names of the parameters in graph views (``V`` and ``c`` for an RNN's output layer).
    dtype : numpy dtype
    name : str, optional

    Examples
    --------
    >>> lin = Linear(3, 2, rng=0)
    >>> lin(np.ones((4, 3))).shape
    (4, 2)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, rng: Any = None,
                 weight_name: str = "W", bias_name: str = "b", dtype: Any = np.float64,
                 name: str | None = None) -> None:
        super().__init__(name)
        r = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
        self.in_features, self.out_features = in_features, out_features
        self.W = self.param("W", init_uniform(r, (out_features, in_features), in_features, dtype),
                            weight_name)
        self.b = (self.param("b", init_uniform(r, (out_features,), in_features, dtype), bias_name)
                  if bias else None)

    def forward(self, x: Any) -> Tensor:
        x = x if isinstance(x, Tensor) else tg.tensor(np.asarray(x))
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"{who(self)}: expected input of shape (..., {self.in_features}), "
                             f"got {x.shape}")
        y = x @ self.W.T
        return y if self.b is None else y + self.b

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.b is not None}"


class Embedding(Module):
    """A lookup table: row ``E[i]`` for each integer id i (the product of E^T and one-hot x).

    Parameters
    ----------
    num_embeddings, embedding_dim : int
    rng : int or numpy Generator, optional
        Seed of the N(0, 1) initialisation (as PyTorch's).
    weight_name : str
    dtype : numpy dtype
    name : str, optional
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, rng: Any = None,
                 weight_name: str = "E", dtype: Any = np.float64, name: str | None = None) -> None:
        super().__init__(name)
        r = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.E = self.param("E", r.standard_normal((num_embeddings, embedding_dim)).astype(dtype),
                            weight_name)

    def forward(self, ids: Any) -> Tensor:
        a = check_ids(self, ids, self.num_embeddings, ndim=np.ndim(getattr(ids, "data", ids)))
        return tg.embedding(self.E, a)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"
