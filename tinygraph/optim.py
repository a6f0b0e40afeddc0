"""Optimizers and gradient clipping: they read `.grad` and update `.data` in place.

Flow: model code -> loss.backward() fills each Parameter's `.grad` -> an optimizer here moves
`.data`. Nothing in this file is recorded on a tape; it is plain numpy on the parameters' arrays.

Names and defaults follow PyTorch (`SGD(params, lr, momentum)`, `Adam(params, lr=1e-3,
betas=(0.9, 0.999), eps=1e-8)`, `clip_grad_norm(params, max_norm)`), so code reads the same.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

__all__ = ["Optimizer", "SGD", "Adam", "clip_grad_norm"]


def _param_list(params: Iterable, who: str) -> list:
    if hasattr(params, "parameters") and callable(params.parameters):
        params = params.parameters()                  # a Module was passed
    params = list(params)
    if not params:
        raise ValueError(f"{who}: got an empty parameter list")
    for i, p in enumerate(params):
        if not (hasattr(p, "data") and getattr(p, "requires_grad", False)):
            raise TypeError(f"{who}: parameter {i} is a {type(p).__name__} that does not require "
                            f"grad; expected tinygraph Parameters")
    return params


class Optimizer:
    """Base class: holds the parameters and clears their gradients."""

    def __init__(self, params: Iterable, lr: float) -> None:
        who = type(self).__name__
        if not lr > 0:
            raise ValueError(f"{who}: learning rate must be positive, got {lr}")
        self.params = _param_list(params, who)
        self.lr = float(lr)

    def zero_grad(self) -> None:
        """Set every parameter's gradient to None (the next backward starts from zero)."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with (optionally Nesterov) momentum and weight decay.

    v <- momentum * v + g;  p <- p - lr * v   (Nesterov: p <- p - lr * (g + momentum * v))

    Parameters
    ----------
    params : iterable of Parameter, or a Module
    lr : float
    momentum : float
        0 gives plain SGD.
    weight_decay : float
        Adds ``weight_decay * p`` to the gradient (L2 penalty).
    nesterov : bool

    Examples
    --------
    >>> opt = SGD(model.parameters(), lr=0.1, momentum=0.9)   # doctest: +SKIP
    >>> opt.zero_grad(); loss.backward(); opt.step()          # doctest: +SKIP
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(params, lr)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"SGD: momentum must lie in [0, 1), got {momentum}")
        if nesterov and momentum == 0.0:
            raise ValueError("SGD: nesterov=True needs a momentum > 0")
        self.momentum, self.weight_decay, self.nesterov = momentum, weight_decay, nesterov
        self.velocity: list[np.ndarray | None] = [None] * len(self.params)

    def step(self) -> None:
        """Move every parameter that has a gradient one step."""
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            if self.momentum:
                v = self.velocity[i]
                if v is None:
                    v = self.velocity[i] = np.array(g, dtype=p.data.dtype)
                else:
                    v *= self.momentum
                    v += g
                g = g + self.momentum * v if self.nesterov else v
            p.data -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction.

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
    p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

    Parameters
    ----------
    params : iterable of Parameter, or a Module
    lr : float
    betas : (float, float)
    eps : float
    weight_decay : float
        L2 penalty added to the gradient (as torch.optim.Adam does).
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"Adam: betas must lie in [0, 1), got {betas}")
        self.b1, self.b2, self.eps, self.weight_decay = b1, b2, eps, weight_decay
        self.t = 0
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]

    def step(self) -> None:
        """Move every parameter that has a gradient one step."""
        self.t += 1
        c1 = 1.0 - self.b1 ** self.t
        c2 = 1.0 - self.b2 ** self.t
        for p, m, v in zip(self.params, self.m, self.v):
            g = p.grad
            if g is None:
                continue
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            m *= self.b1
            m += (1.0 - self.b1) * g
            v *= self.b2
            v += (1.0 - self.b2) * (g * g)
            p.data -= (self.lr / c1) * m / (np.sqrt(v / c2) + self.eps)


def clip_grad_norm(params: Iterable, max_norm: float) -> float:
    """Scale all gradients together so their global L2 norm is at most `max_norm`.

    The remedy for exploding gradients in RNNs (Pascanu et al., 2013).

    Parameters
    ----------
    params : iterable of Parameter, or a Module
    max_norm : float

    Returns
    -------
    float
        The global norm before clipping (inf or nan passes through, and nothing is scaled).
    """
    if not max_norm > 0:
        raise ValueError(f"clip_grad_norm: max_norm must be positive, got {max_norm}")
    params = _param_list(params, "clip_grad_norm")
    grads = [p.grad for p in params if p.grad is not None]
    total = float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads)))
    if np.isfinite(total) and total > max_norm:
        scale = max_norm / (total + 1e-12)
        for p in params:
            if p.grad is not None:
                p.grad = p.grad * scale
    return total
