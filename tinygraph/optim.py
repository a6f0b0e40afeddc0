"""Optimizers and gradient clipping: they read `.grad` and update `.data` in place.

Flow: model code -> loss.backward() fills each Parameter's `.grad` -> an optimizer here moves
`.data`. Nothing in this file is recorded on a tape; it is plain numpy on the parameters' arrays.

Names, defaults and update formulas follow PyTorch (`SGD(params, lr, momentum)`, `Adam(params,
lr=1e-3, betas=(0.9, 0.999), eps=1e-8)`, `clip_grad_norm(params, max_norm)`), so code reads the
same and gives the same numbers. Every update bumps the parameter's version, so a backward through
a graph recorded before the step (with ``retain_graph=True``) raises instead of silently taking
the gradient at the new weights.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from .tensor import Tensor

__all__ = ["Optimizer", "SGD", "Adam", "clip_grad_norm"]


def _param_list(params: Iterable, who: str) -> list:
    if isinstance(params, Tensor):  # iterating it would walk its rows and train nothing
        raise TypeError(f"{who}: params must be an iterable of Parameters or a Module, got a "
                        f"single {type(params).__name__} of shape {params.shape}; wrap it in a "
                        f"list: {who}([p], ...)")
    if hasattr(params, "parameters") and callable(params.parameters):
        params = params.parameters()                  # a Module was passed
    params = list(params)
    if not params:
        raise ValueError(f"{who}: got an empty parameter list")
    seen: dict[int, int] = {}
    for i, p in enumerate(params):
        if not (isinstance(p, Tensor) and p.requires_grad):
            raise TypeError(f"{who}: parameter {i} is a {type(p).__name__} that does not require "
                            f"grad; expected tinygraph Parameters")
        if id(p) in seen:
            raise ValueError(f"{who}: parameter {i} ({p.name or 'unnamed'}, shape {p.shape}) is "
                             f"the same as parameter {seen[id(p)]}; list each parameter once")
        seen[id(p)] = i
    return params


def _non_negative(who: str, **values: float) -> None:
    for name, v in values.items():
        if not v >= 0.0:
            raise ValueError(f"{who}: {name} must be >= 0, got {v}")


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
        _non_negative("SGD", weight_decay=weight_decay)
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
            p.mark_modified()


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction, as torch.optim.Adam computes it.

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
    p <- p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

    `t` counts the steps of each parameter separately (PyTorch's ``state['step']``): a parameter
    that had no gradient in a step neither moves nor advances its count.

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
        _non_negative("Adam", eps=eps, weight_decay=weight_decay)
        self.b1, self.b2, self.eps, self.weight_decay = b1, b2, eps, weight_decay
        self.t = [0] * len(self.params)  # steps taken by each parameter
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]

    def step(self) -> None:
        """Move every parameter that has a gradient one step."""
        for k, (p, m, v) in enumerate(zip(self.params, self.m, self.v)):
            g = p.grad
            if g is None:
                continue
            self.t[k] += 1
            t = self.t[k]
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            m *= self.b1
            m += (1.0 - self.b1) * g
            v *= self.b2
            v += (1.0 - self.b2) * (g * g)
            c1 = 1.0 - self.b1 ** t
            c2 = 1.0 - self.b2 ** t
            p.data -= (self.lr / c1) * m / (np.sqrt(v) / np.sqrt(c2) + self.eps)
            p.mark_modified()


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
