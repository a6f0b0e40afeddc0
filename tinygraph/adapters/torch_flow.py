"""Per-loss-term gradient flow and Jacobian spectra of a recorded torch graph.

Flow: tinygraph.adapters.torch records nodes and infers names and steps -> **torch_flow**
(replays the kept nodes with torch's autograd on, then ``torch.autograd.grad`` per loss term and
per hidden unit) -> `tinygraph.flow.variable_flow` (the one place the format is filled in) ->
the export's ``flow`` graph attribute -> viz.diagnose / viz.flow_map.

The same quantities as ``tinygraph.flow`` (docs/CONTRACT.md, key ``flow``):
F[τ′, t] = ‖∂L(τ′)/∂h(t)‖ for the loss terms L(τ′) (nodes named ``L`` with a step) and each
recurrent variable (a state name h, g, s, c whose value at one step is computed from its value
at the step recorded before), and J(t) = ∂h(t)/∂h(t−1).

Why a replay: torch frees its graph's buffers at ``backward()``, and the nodes drawn inside a
fused cell (`torch_cells`) are shadows that torch never computed one by one. Replaying every
kept node's recorded call on detached copies of the recorded leaves gives one differentiable
graph with a tensor per node; torch's own values and gradients are left untouched.

Cost: one forward replay, then one reverse sweep per loss term and variable (about T²/2 step
backwards in all) and, per variable, a second replay with the states cut apart plus one sweep
per hidden unit. Hence ``graph(flow=None)`` computes it only up to `MAX_STEPS` steps.
"""
from __future__ import annotations

import re
import time
from typing import Any

import numpy as np
import torch

from tinygraph.flow import GradientFlow, variable_flow

from .torch_infer import STATES

#: ``Recording.graph(flow=None)`` computes the flow for recordings up to this many steps
MAX_STEPS = 1000
#: ... and the per-step Jacobians (n, B, H, H) only up to this many numbers (128 MB of float64)
MAX_JACOBIAN = 2 ** 24
_WEIGHT = re.compile(r"^W\d*$")


def steps_of(N: list, keep: list[int]) -> int:
    """The number of time steps of the recording (the largest step tag, 0 without any)."""
    return max((N[i].step for i in keep if N[i].step is not None), default=0)


def loss_terms(N: list, keep: list[int]) -> list[int]:
    """Nodes of the per-step loss terms L(t): named ``L``, tagged with a step, one number."""
    return [i for i in keep if N[i].name == "L" and N[i].step is not None
            and N[i].kind == "op" and int(np.prod(N[i].shape or [])) == 1]


def state_groups(N: list, keep: list[int]) -> dict[str, list[int]]:
    """``{label: [state nodes in recording order]}`` of every recurrent variable.

    A variable is a (scope, state name) of op nodes with a step, one shape, at least two
    states, read directly by an op of another step (the delay edge viz folds into a loop: an
    LSTM's gate g, named like a backward state, is read at its own step only), each computed
    from the one recorded before it (h(t−1) -> h(t); a backward chain g(t+1) -> g(t)). One
    pass over the tape per variable: no recursion.
    """
    later = {j for i in keep if N[i].step is not None for j in N[i].inputs
             if N[j].step is not None and N[j].step != N[i].step}
    groups: dict[tuple, list[int]] = {}
    for i in keep:
        n = N[i]
        if n.kind == "op" and n.name in STATES and n.step is not None:
            groups.setdefault((n.scope, n.name), []).append(i)
    out: dict[str, list[int]] = {}
    for (scope, name), seq in groups.items():
        if len(seq) < 2 or len({tuple(N[i].shape or []) for i in seq}) != 1:
            continue
        if (len({N[i].step for i in seq}) != len(seq) or not later.intersection(seq)
                or not _chain(N, keep, seq)):
            continue
        out[f"{scope}/{name}" if scope else name] = seq
    return out


def _chain(N: list, keep: list[int], seq: list[int]) -> bool:
    """Whether every state of `seq` depends on the one before it (the latest state each node
    reads, carried forward in tape order)."""
    pos = {s: k for k, s in enumerate(seq)}
    latest: dict[int, int] = {}
    for i in keep:
        reach = max((latest.get(j, -1) for j in N[i].inputs), default=-1)
        if i in pos:
            if pos[i] > 0 and reach != pos[i] - 1:
                return False
            reach = pos[i]
        if reach >= 0:
            latest[i] = reach
    return True


def recurrent_weight(N: list, keep: list[int], labels: dict, scope: str) -> int | None:
    """The parameter labelled W (W2 for layer 2, ...) of this variable's scope, if one."""
    cands = [i for i in keep if N[i].kind == "param" and _WEIGHT.match(labels.get(i) or "")]
    if len(cands) > 1:  # several layers: the one recorded in the variable's scope
        cands = [i for i in cands if N[i].scope and scope.startswith(N[i].scope)] or cands
        best = max(len(N[i].scope) for i in cands)
        cands = [i for i in cands if len(N[i].scope) == best]
    return cands[0] if len(cands) == 1 else None


def replay(N: list, keep: list[int], cut: frozenset = frozenset()) -> tuple[dict, dict]:
    """Every kept node's value recomputed with autograd on: ``({node: tensor}, {node: leaf})``.

    Leaves are detached copies of the recorded values (parameters and inputs that required a
    gradient require one here). A node in `cut` is read by its consumers through a fresh leaf
    (the second dict), so the gradient reaching that leaf is what one step sends back alone.
    """
    vals: dict[int, Any] = {}
    cuts: dict[int, Any] = {}
    with torch.enable_grad():
        for i in keep:
            n = N[i]
            if n.fn is None:
                v = n.value.detach()
                if n.requires_grad and (v.is_floating_point() or v.is_complex()):
                    v = v.clone().requires_grad_(True)
            else:
                v = n.fn(*[cuts.get(j, vals[j]) for j in n.inputs])
            vals[i] = v
            if i in cut:
                cuts[i] = v.detach().requires_grad_(True)
    return vals, cuts


def _grads(outs: list, ins: list, seeds: list | None = None) -> list:
    live = [(o, s) for o, s in zip(outs, seeds or [None] * len(outs)) if o.requires_grad]
    wanted = [k for k, t in enumerate(ins) if t.requires_grad]
    got: list = [None] * len(ins)
    if not live or not wanted:
        return got
    res = torch.autograd.grad([o for o, _ in live], [ins[k] for k in wanted],
                              grad_outputs=None if seeds is None else [s for _, s in live],
                              retain_graph=True, allow_unused=True)
    for k, g in zip(wanted, res):
        got[k] = g
    return got


def _jacobians(N: list, keep: list[int], seq: list[int]) -> np.ndarray:
    """J[k, b] = ∂h_k/∂h_{k−1} for batch row b, shape (n, B, H, H); J[0] is NaN.

    The states are cut apart (each read through a fresh leaf), so one sweep per unit i, seeded
    with e_i at every state, leaves row i of J_k at the leaf of h_{k−1}: no product of
    Jacobians ever forms (the cut `tinygraph.flow` makes with hooks).
    """
    vals, cuts = replay(N, keep, frozenset(seq))
    shape = tuple(vals[seq[0]].shape)
    H = shape[-1] if shape else 1
    B = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    n = len(seq)
    J = np.full((n, B, H, H), np.nan)
    outs = [vals[s] for s in seq[1:]]
    ins = [cuts[s] for s in seq[:-1]]
    for i in range(H):
        E = torch.zeros(shape, dtype=vals[seq[0]].dtype)
        E[..., i] = 1.0
        got = _grads(outs, ins, [E] * len(outs))
        for k in range(1, n):
            g = got[k - 1]
            J[k, :, i, :] = 0.0 if g is None else g.detach().double().reshape(B, H).numpy()
    return J


def compute(N: list, keep: list[int], labels: dict, window: int = 10,
            jacobians: bool | None = None) -> tuple[GradientFlow | None, str]:
    """The recording's `GradientFlow` (None when it has no loss terms or no recurrent
    variable), and a note saying what was computed or why not. `jacobians` None: each
    variable's spectra when its Jacobians hold at most `MAX_JACOBIAN` numbers."""
    start = time.perf_counter()
    losses = loss_terms(N, keep)
    groups = state_groups(N, keep)
    if not groups:
        return None, "per-loss-term flow: no recurrent variable (h, g, s, c over steps) found"
    if not losses:
        return None, ("per-loss-term flow not exported: no per-step loss terms L(t) (a loss "
                      "computed per step, e.g. F.cross_entropy(head(h[:, t]), y[:, t]), can be "
                      "told apart; one loss over all steps at once cannot)")
    vals, _ = replay(N, keep)
    loss_steps = np.array([N[i].step for i in losses], dtype=float)
    out, sweeps, skipped = [], 0, []
    for label, seq in groups.items():
        Fm = np.zeros((len(losses), len(seq)))
        states = [vals[s] for s in seq]
        for r, L in enumerate(losses):        # one reverse sweep per loss term
            got = _grads([vals[L]], states)
            sweeps += 1
            Fm[r] = [0.0 if g is None else float(torch.linalg.vector_norm(g.double()))
                     for g in got]
        J = None
        shape = N[seq[0]].shape or [1]
        size = len(seq) * int(np.prod(shape)) * int(shape[-1])   # n x B x H x H
        if jacobians is None and size > MAX_JACOBIAN:
            skipped.append(label)
        if (jacobians or (jacobians is None and size <= MAX_JACOBIAN)) and len(seq) > 1:
            J = _jacobians(N, keep, seq)
            sweeps += J.shape[-1]
        w = recurrent_weight(N, keep, labels, N[seq[0]].scope)
        out.append(variable_flow(
            label, N[seq[0]].name, N[seq[0]].scope, np.array([N[s].step for s in seq]),
            loss_steps, Fm, J, window,
            None if w is None else N[w].value.detach().double().numpy(),
            None if w is None else labels.get(w), [v.detach().double().numpy() for v in states],
            tuple(seq), tuple(losses)))
    gf = GradientFlow(tuple(out), sweeps, time.perf_counter() - start)
    names = ", ".join(v.label for v in gf.variables)
    note = (f"per-loss-term flow of {names}: {len(losses)} loss terms, {sweeps} reverse "
            f"sweeps, {gf.seconds:.2g} s")
    if skipped:
        note += (f"; Jacobian spectra of {', '.join(skipped)} skipped (more than "
                 f"{MAX_JACOBIAN} numbers: steps x batch x H x H)")
    return gf, note
