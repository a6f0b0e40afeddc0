"""Gradient flow through time, per loss term, and the Jacobian spectra behind it.

Flow: model code records losses L(τ′) and states h(t) on a tape -> **flow** (reverse sweeps over
the retained tape, through the public ``tg.grad``) -> a `GradientFlow` -> ``tg.trace(loss,
flow=...)`` puts it in the exported graph's ``flow`` attribute -> viz (diagnose, heat map).

With a loss at every step, ‖∂L/∂h(t)‖ mixes the local term L(t) with the terms of later steps,
so it cannot tell whether long-range gradient survives. This module keeps the terms apart
(Bengio et al., 1994; Pascanu, Mikolov & Bengio, 2013):

    F[τ′, t] = ‖∂L(τ′)/∂h(t)‖,   ∂L(τ′)/∂h(t) = ∂L(τ′)/∂h(τ′) ∏ₖ ∂h(k)/∂h(k−1)   (t ≤ τ′)

and measures the factors of that product: per step the largest singular value of the Jacobian
J(t) = ∂h(t)/∂h(t−1) (for the seed's tanh RNN diag(1 − h(t)²) W), of the product of the last
``window`` Jacobians, the spectral radius of W, and the fraction of saturated units.

Cost: one reverse sweep per loss term (each covers the steps before it: about T²/2 step
backwards in all) and one sweep per hidden unit for the Jacobians. Measured in the report of
issue 9 and `demos/flow_exhibits.py`: fine up to T ≈ 1,000.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from .autograd import grad, sweep
from .export import fused_states
from .tensor import Tensor

#: units with |h| above this count as saturated (tanh' = 1 − h² < 0.02)
SATURATED = 0.99


@dataclass(frozen=True)
class VariableFlow:
    """Per-loss-term flow and Jacobian spectra of one recurrent variable.

    Attributes
    ----------
    label : str
        The key it was given under in `states` (default: ``scope/name`` of its states).
    name, scope : str
        The variable's name (``h``, ``g``, ``s``) and the scope its states were recorded in.
    steps : ndarray of int, shape (n,)
        Step tag of each state, in recording order (a backward chain runs τ..1).
    loss_steps : ndarray, shape (m,)
        Step tag of each loss term (NaN for a term recorded outside any step).
    F : ndarray, shape (m, n)
        ``F[i, k] = ‖∂L_i/∂h_k‖`` (Frobenius norm over the batch); 0 where L_i does not depend
        on h_k.
    sigma : ndarray, shape (n,)
        Largest singular value of ∂h_k/∂h_{k−1} (the largest over the batch rows, i.e. of the
        block-diagonal batch Jacobian); NaN for the first state. Empty when not computed.
    sigma_window : ndarray, shape (n,)
        Largest singular value of ∂h_k/∂h_{k−window} = J_k ⋯ J_{k−window+1}; NaN while fewer
        than ``window`` Jacobians precede.
    window : int
    rho : float or None
        Spectral radius of the recurrent weight (``None`` when no square weight was given).
    weight : str or None
        Name of that weight.
    saturation : ndarray, shape (n,)
        Fraction of units with |h| > 0.99 in each state.
    """

    label: str
    name: str
    scope: str
    steps: np.ndarray
    loss_steps: np.ndarray
    F: np.ndarray
    sigma: np.ndarray
    sigma_window: np.ndarray
    window: int
    rho: float | None
    weight: str | None
    saturation: np.ndarray
    state_ids: tuple = ()    # tape ids of the states and the loss terms (for the export)
    loss_ids: tuple = ()

    def to_attrs(self, new_id: Mapping[int, int] | None = None) -> dict:
        """Plain data for the exported graph's ``flow`` attribute (see docs/CONTRACT.md)."""
        def ids(old: tuple) -> list:
            return [None if new_id is None else new_id.get(i) for i in old]
        return {"label": self.label, "name": self.name, "scope": self.scope,
                "steps": [int(s) for s in self.steps],
                "loss_steps": [None if np.isnan(s) else int(s) for s in self.loss_steps],
                "nodes": ids(self.state_ids), "loss_nodes": ids(self.loss_ids),
                "F": self.F.tolist(), "sigma": _floats(self.sigma),
                "sigma_window": _floats(self.sigma_window), "window": self.window,
                "rho": self.rho, "weight": self.weight,
                "saturation": _floats(self.saturation)}


@dataclass(frozen=True)
class GradientFlow:
    """What :func:`flow` measured: one `VariableFlow` per recurrent variable, and its cost.

    Attributes
    ----------
    variables : tuple of VariableFlow
    sweeps : int
        Reverse sweeps run (loss terms per variable, plus one per hidden unit for Jacobians).
    seconds : float
        Wall time of the computation.
    """

    variables: tuple
    sweeps: int
    seconds: float
    meta: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> VariableFlow:
        for v in self.variables:
            if name in (v.label, v.name, f"{v.scope}/{v.name}"):
                return v
        raise KeyError(f"flow: no variable {name!r}; have "
                       f"{[v.label for v in self.variables]}")

    def to_attrs(self, new_id: Mapping[int, int] | None = None) -> dict:
        """The exported ``flow`` graph attribute: ``{"variables": [...], "sweeps", "seconds"}``."""
        return {"variables": [v.to_attrs(new_id) for v in self.variables],
                "sweeps": self.sweeps, "seconds": self.seconds}


def flow(losses: Sequence[Tensor], states: Sequence[Tensor] | Mapping[str, Sequence[Tensor]],
         weights: Tensor | Mapping[str, Tensor] | None = None, window: int = 10,
         jacobians: bool = True) -> GradientFlow:
    """Per-loss-term gradient flow F[τ′, t] = ‖∂L(τ′)/∂h(t)‖ and the Jacobian spectra.

    Run it on a graph whose buffers are still there: before ``loss.backward()``, or after
    ``loss.backward(retain_graph=True)``. It leaves every ``.grad`` alone.

    Parameters
    ----------
    losses : sequence of Tensor
        The loss terms L(1..τ), each a scalar of the same graph (``nn.sequence_loss`` names
        them ``L`` and tags their steps; a single final loss is a list of one).
    states : sequence of Tensor, or mapping of label -> sequence of Tensor
        The states of each recurrent variable, one tensor (B, H) or (H,) per step, each
        depending on the one recorded before it (h(1..τ); a backward chain g(τ..1)). Several
        variables (the bidirectional net's h and g, seq2seq's encoder and decoder, the layers of
        a stacked RNN) go in a mapping.
    weights : Tensor or mapping of label -> Tensor, optional
        The recurrent weight W of each variable, for its spectral radius.
    window : int
        Number of Jacobians multiplied for ``sigma_window``.
    jacobians : bool
        Also compute the per-step Jacobians (one sweep per hidden unit). Switch off for states
        that are not a chain (the nodes of a tree).

    Returns
    -------
    GradientFlow
        ``result["h"].F`` is the matrix (loss terms × states); ``tg.trace(loss, flow=result)``
        exports it for viz.

    Raises
    ------
    ValueError
        Empty ``losses`` or ``states``, a loss that is not a scalar, or states of unequal shape.

    Examples
    --------
    >>> rnn = tg.nn.RNN(4, 8, 4, rng=0)                                  # doctest: +SKIP
    >>> out = rnn(x)                                                     # doctest: +SKIP
    >>> terms = [tg.cross_entropy(o, y[:, t]) for t, o in enumerate(out.o)]  # doctest: +SKIP
    >>> f = tg.flow(terms, out.h, weights=rnn.cell.W)                    # doctest: +SKIP
    >>> f["h"].F[-1, 0] / f["h"].F[-1, -1]      # L(τ) at h(1), relative to h(τ)  # doctest: +SKIP
    """
    start = time.perf_counter()
    losses = list(losses)
    if not losses:
        raise ValueError("flow: expected at least one loss term, got none")
    for k, L in enumerate(losses):
        if not isinstance(L, Tensor) or L.data.size != 1:
            raise ValueError(f"flow: loss term {k} must be a scalar Tensor, got "
                             f"{getattr(L, 'shape', type(L).__name__)}")
    groups = _groups(states)
    wmap = _weights(weights, groups)
    out, sweeps = [], 0
    loss_steps = np.array([_step(L) for L in losses], dtype=float)
    for label, seq in groups.items():
        fused = fused_states(seq)                # h(t) of a fused recurrence (nn.RNN fused)
        Fm = np.zeros((len(losses), len(seq)))
        for i, L in enumerate(losses):           # one reverse sweep per loss term
            if fused is None:
                gs = [None if g is None else g.data
                      for g in grad(L, seq, retain_graph=True, allow_unused=True)]
            else:
                gs = _fused_grads(L, *fused)
            sweeps += 1
            Fm[i] = [0.0 if g is None else float(np.linalg.norm(g)) for g in gs]
        J = None
        if jacobians and len(seq) > 1:
            J = _jacobians(seq) if fused is None else _fused_jacobians(*fused)
            sweeps += seq[0].shape[-1] if fused is None else 0
        W = wmap.get(label)
        steps = np.array([_step(s) for s in seq], dtype=float)
        out.append(variable_flow(
            label, seq[0].name or label.split("/")[-1], _scope(seq[0]), steps, loss_steps, Fm,
            J, window, None if W is None else W.data,
            None if W is None else (W.name or "W"), [s.data for s in seq],
            tuple(s._idx for s in seq), tuple(L._idx for L in losses)))
    return GradientFlow(tuple(out), sweeps, time.perf_counter() - start)


def variable_flow(label: str, name: str, scope: str, steps: np.ndarray, loss_steps: np.ndarray,
                  F: np.ndarray, J: np.ndarray | None, window: int, W: np.ndarray | None,
                  weight: str | None, states: Sequence[np.ndarray], state_ids: tuple = (),
                  loss_ids: tuple = ()) -> VariableFlow:
    """A `VariableFlow` from plain arrays: the spectra, ρ(W) and saturation computed here.

    The one place the exported flow format is filled in, for :func:`flow` and for the adapters
    of other engines (``tinygraph.adapters.torch`` computes F and J with torch's autograd).

    Parameters
    ----------
    label, name, scope : str
        See `VariableFlow`.
    steps : ndarray, shape (n,)
        Step tag of each state (NaN anywhere: numbered 1..n instead).
    loss_steps : ndarray, shape (m,)
        Step tag of each loss term (NaN: none).
    F : ndarray, shape (m, n)
        ``F[i, k] = ‖∂L_i/∂h_k‖``.
    J : ndarray, shape (n, B, H, H), or None
        ``J[k, b] = ∂h_k/∂h_{k−1}`` for batch row b (``J[0]`` unused); None: not computed.
    window : int
        Jacobians multiplied for ``sigma_window``.
    W : ndarray or None
        The recurrent weight (its spectral radius when square).
    weight : str or None
        Its name.
    states : sequence of ndarray
        The state values h_1..h_n (for the saturation).
    state_ids, loss_ids : tuple
        Node ids of the states and the loss terms in the recording (mapped by ``to_attrs``).

    Returns
    -------
    VariableFlow
    """
    n = len(states)
    sigma = sigw = np.full(n, np.nan)
    if J is not None and n > 1:
        sigma, sigw = _spectra(J, window)
    rho = None
    if W is not None and W.ndim == 2 and W.shape[0] == W.shape[1]:
        rho = float(np.max(np.abs(np.linalg.eigvals(W))))
    sat = np.array([float(np.mean(np.abs(s) > SATURATED)) for s in states])
    steps = np.asarray(steps, dtype=float)
    return VariableFlow(
        label=label, name=name, scope=scope,
        steps=steps.astype(int) if not np.isnan(steps).any() else np.arange(1, n + 1),
        loss_steps=np.asarray(loss_steps, dtype=float), F=np.asarray(F, dtype=float),
        sigma=sigma, sigma_window=sigw, window=window, rho=rho,
        weight=None if W is None else weight, saturation=sat, state_ids=tuple(state_ids),
        loss_ids=tuple(loss_ids))

def _groups(states: Any) -> dict[str, list[Tensor]]:
    """``{label: [states in recording order]}`` from a list or a mapping."""
    if isinstance(states, Tensor):
        raise ValueError("flow: states must be a sequence of Tensors (one per step), got one "
                         "Tensor")
    items = states.items() if isinstance(states, Mapping) else [(None, states)]
    groups: dict[str, list[Tensor]] = {}
    for label, seq in items:
        seq = list(seq)
        if not seq:
            raise ValueError(f"flow: no states given for {label or 'the variable'}")
        shapes = {s.shape for s in seq}
        if len(shapes) != 1:
            raise ValueError(f"flow: states of {label or 'the variable'} must share one shape, "
                             f"got {sorted(shapes)}")
        if any(s._tape is None for s in seq):
            raise ValueError(f"flow: every state of {label or 'the variable'} must be made by "
                             f"recorded ops (a leaf has no incoming flow)")
        seq.sort(key=lambda s: s._idx)   # the tape order is the order of the recurrence
        if label is None:
            label = seq[0].name or "h"
            scope = _scope(seq[0])
            label = f"{scope}/{label}" if scope else label
        groups[label] = seq
    return groups


def _weights(weights: Any, groups: dict) -> dict[str, Tensor]:
    if weights is None:
        return {}
    if isinstance(weights, Tensor):
        return {label: weights for label in groups}
    unknown = set(weights) - set(groups)
    if unknown:
        raise ValueError(f"flow: weights given for {sorted(unknown)}, but the states are "
                         f"{sorted(groups)}")
    return dict(weights)


def _step(t: Tensor) -> float | None:
    s = t._tape.node(t._idx).step if t._tape is not None else None
    return np.nan if s is None else s


def _scope(t: Tensor) -> str:
    return t._tape.node(t._idx).scope if t._tape is not None else ""


@contextlib.contextmanager
def _hooks(seq: list[Tensor], fns: list) -> Iterator[None]:
    """Register ``fns[k]`` on ``seq[k]`` for the duration (the engine has no remove handle)."""
    for s, fn in zip(seq, fns):
        s.register_hook(fn)
    try:
        yield
    finally:
        for s, fn in zip(seq, fns):
            hooks = s._tape.hooks.get(s._idx, [])
            if fn in hooks:
                hooks.remove(fn)
            if not hooks:
                s._tape.hooks.pop(s._idx, None)


def _fused_grads(L: Tensor, unfold: Any, steps: list[int]) -> list:
    """dL/dh(t) at the given steps of a fused recurrence: one sweep to the fused op's output,
    then the seed's BPTT inside it (`ElmanUnfold.state_grads`)."""
    scan = unfold.ids["scan"]
    got = sweep(L._tape, {L._idx: np.ones_like(L.data)}, retain_graph=True, capture={scan},
                write_leaves=False)
    if scan not in got:
        return [None] * len(steps)
    gh = unfold.state_grads(np.asarray(got[scan]))[0]
    return [gh[t - 1] for t in steps]


def _fused_jacobians(unfold: Any, steps: list[int]) -> np.ndarray:
    """The `_jacobians` layout (n, B, H, H), J[0] NaN, for consecutive steps of a fused run."""
    if steps != list(range(steps[0], steps[0] + len(steps))):
        raise ValueError(f"flow: the Jacobians of a fused recurrence need consecutive steps, "
                         f"got {steps[:5]}...; pass jacobians=False or every h(t)")
    J = unfold.jacobians()[steps[0] - 1:steps[-1]].copy()
    J[0] = np.nan
    return J


def _jacobians(seq: list[Tensor]) -> np.ndarray:
    """J[k, b] = ∂h_k/∂h_{k−1} for batch row b, shape (n, B, H, H); J[0] is NaN.

    One sweep per unit i seeds e_i at every state at once; a hook on each state records the
    gradient that arrived from the state after it, J_{k+1}ᵀ e_i = row i of J_{k+1}, then puts
    e_i back in its place, so no product of Jacobians ever forms (no overflow, no mixing).
    Batch rows are independent sequences, so one seed per unit serves every row.
    """
    shape = seq[0].shape
    H = shape[-1]
    B = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    n = len(seq)
    J = np.full((n, B, H, H), np.nan)
    arrived: list[Any] = [None] * n
    cur: dict[str, Any] = {}

    def hook_for(k: int):
        def fn(g: np.ndarray) -> np.ndarray:
            arrived[k] = g - cur["E"]
            return cur["E"]
        return fn

    with _hooks(seq, [hook_for(k) for k in range(n)]):
        for i in range(H):
            E = np.zeros(shape, dtype=seq[0].dtype)
            E[..., i] = 1.0
            cur["E"] = E
            arrived[:] = [None] * n
            grad(seq, [seq[0]], grad_outputs=[E] * n, retain_graph=True, allow_unused=True)
            for k in range(1, n):
                a = arrived[k - 1]
                J[k, :, i, :] = 0.0 if a is None else np.reshape(a, (B, H))
    return J


def _spectra(J: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """σ_max of each J_k and of each product of ``window`` consecutive ones (max over rows)."""
    n = J.shape[0]
    sigma = np.full(n, np.nan)
    sigma[1:] = np.linalg.norm(J[1:], ord=2, axis=(-2, -1)).max(axis=1)
    sigw = np.full(n, np.nan)
    if window >= 1:
        for k in range(window, n):
            P = J[k]
            for j in range(k - 1, k - window, -1):
                P = P @ J[j]
            sigw[k] = float(np.linalg.norm(P, ord=2, axis=(-2, -1)).max())
    return sigma, sigw


def _floats(a: np.ndarray) -> list:
    return [float(x) for x in a]   # NaN (not computed) and inf are kept, as grad_norm keeps them
