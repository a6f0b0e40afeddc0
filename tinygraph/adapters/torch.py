"""PyTorch adapter: record a torch forward and backward into tinygraph's graph schema.

Flow: a PyTorch program runs inside ``record(model)`` -> every torch call is observed through
public hooks only (``torch.overrides.TorchFunctionMode``, global module forward (pre-)hooks,
tensor ``register_hook``) -> ``Recording.graph()`` -> a `tinygraph.Graph` (schema of
docs/CONTRACT.md) -> viz draws it folded, unfolded and with gradient norms.

The adapter only observes: torch computes exactly what it computes without it (its ``.grad``
is bit for bit the same). What the pictures need beyond that is reconstructed beside torch's
computation, never in it:

- ``F.linear`` is drawn as ``matmul`` (reading the weight) then ``add`` (the bias), so the
  views can tell a weight from a bias, as in the book.
- A fused cell (``nn.RNNCell``, ``LSTMCell``, ``GRUCell``) and a fused sequence module
  (``nn.RNN``, ``LSTM``, ``GRU``) are drawn as their equations, step by step. The nodes inside
  are *shadow* nodes: their values are recomputed from the same inputs and weights when the
  graph is built, and for a fused sequence module checked against torch's output (they must
  agree to 1e-6, else the recording refuses with the difference). Their gradients come from
  torch's own gradient at the module's output, sent back through the equations.
- Gradients per node are torch's own (tensor hooks); the gradient sent back along each edge is
  the vector-Jacobian product of that one op, recomputed with ``torch.autograd.grad`` on its
  recorded inputs when the graph is built.

Pieces: this module (the recording: hooks, nodes, `graph`), `torch_calls` (reading one torch
call, replaying one op, its vector-Jacobian product), `torch_cells` (the fused cells'
equations), `torch_infer` (steps, names and labels read from the recorded graph).

Time steps come from ``step(t)`` (the same context as ``tinygraph.step``), else from the calls
of a cell module (its k-th call is step k) and the time loop of a fused module, carried forward
to the ops that read one step only. Names follow the book: x, h (g backward, c the LSTM cell
state, gates i f g o / r z n as in `tinygraph.nn`), o, L, y; torch's recurrent parameters
``weight_ih`` -> U, ``weight_hh`` -> W, ``bias_ih``/``bias_hh`` -> b_ih/b_hh (layer k > 1:
U2, W2, ...), the output ``Linear`` -> V and c, an ``Embedding`` -> E; other parameters keep a
short label (``fc.W``, ``fc.b``).
"""
from __future__ import annotations

import contextlib
import math
import threading
import weakref
from typing import Any, Callable, Mapping

try:
    import torch
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "tinygraph.adapters.torch needs PyTorch, which is an optional extra: "
        'pip install "tinygraph[torch]" (or the CPU wheel: pip install torch==2.13.0)') from exc

import tinygraph
from tinygraph import tape as _tape
from tinygraph.export import SCHEMA_VERSION, Graph

from . import torch_calls as calls
from . import torch_cells as cells
from . import torch_flow
from .torch_infer import Node, infer_names, infer_steps, param_labels

__all__ = ["record", "Recording", "step", "scope"]

#: the time-step context: tinygraph's own, so one loop can tag tinygraph and torch code alike
step = tinygraph.step
#: the scope context (module calls open one per module automatically)
scope = tinygraph.scope


# ------------------------------------------------------------------------------------------------
# the record
# ------------------------------------------------------------------------------------------------

class _Mode(TorchFunctionMode):
    def __init__(self, rec: "Recording") -> None:
        super().__init__()
        self.rec = rec

    def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        return self.rec._on_call(func, args, kwargs or {})


_ACTIVE = threading.local()


def record(model: Any = None, *, fused: str = "cells", source: bool = True) -> "Recording":
    """Record the torch computations run inside the ``with`` block.

    Parameters
    ----------
    model : torch.nn.Module, or mapping of name -> Module or Tensor, optional
        Where parameter names and scopes come from: a module's qualified names (``rnn.cell``)
        and attribute names, or the keys of a mapping (``{"U": U, "W": W}`` for a loop written
        with plain tensors). Modules called that are not in `model` are still scoped, by class.
    fused : {"cells", "node"}
        How to draw a fused ``nn.RNN`` / ``LSTM`` / ``GRU`` call: as its cell loop re-run with
        the same weights (checked equal to the fused output to 1e-6), or as one node.
        Packed sequences, dropout between layers and LSTM projections are always one node.
    source : bool
        Record the user's ``file.py:line`` of every node (``src``).

    Returns
    -------
    Recording
        A context manager; after ``backward()`` call ``.graph()``.

    Examples
    --------
    >>> from tinygraph.adapters import torch as tgt                 # doctest: +SKIP
    >>> with tgt.record(model) as rec:                              # doctest: +SKIP
    ...     loss = model(x, y)
    ...     loss.backward()
    >>> g = rec.graph()                  # a tinygraph.Graph           # doctest: +SKIP
    >>> viz.render(viz.folded(g), "folded.png")                     # doctest: +SKIP
    """
    if fused not in ("cells", "node"):
        raise ValueError(f"record: fused must be 'cells' or 'node', got {fused!r}")
    return Recording(model, fused=fused, source=source)


class Recording:
    """What `record` returns: a context manager that observes torch and builds the graph.

    Parameters
    ----------
    model, fused, source : see `record`.

    Notes
    -----
    Every recorded tensor is kept alive as long as the recording (`graph` reads their values).
    Tensor hooks stay registered until `graph` or `close`, so ``backward()`` may also come
    after the ``with`` block; gradients of a later backward are added up, as torch adds them.
    """

    def __init__(self, model: Any = None, fused: str = "cells", source: bool = True) -> None:
        self.fused, self.source = fused, source
        self.nodes: list[Node] = []
        self._ids: dict[int, int] = {}          # id(tensor) -> node (tensors kept in _keep)
        self._keep: list = []
        self._grads: dict[int, list] = {}        # node -> gradients torch sent (hooks)
        self._hooks: list = []
        self._module_hooks: list = []
        self._params: dict[int, str] = {}        # id(parameter) -> qualified name
        self._ptypes: dict[int, str] = {}        # id(parameter) -> owning module's class name
        self._mnames: dict[int, str] = {}        # id(module) -> qualified name
        self._mtypes: dict[int, str] = {}        # id(module) -> class name
        self._explicit_names: set[str] = set()   # parameters named by the caller (dict keys)
        self._calls: dict[int, int] = {}         # cell module -> calls so far
        self._stack: list = []                   # (scope context, module, previous cell step)
        self._cell_step: int | None = None
        self._fused_steps: dict[int, int] = {}
        self._parts: dict[int, tuple] = {}       # a fused output -> (time axis, its steps' nodes)
        self._picks: dict[int, list] = {}        # ... -> [(node reading one step, index)]
        self._explicit = False
        self._roots: list[int] = []
        self._paused = False
        self._src: tuple | None = None             # (src, code) of the call being recorded
        self._mode: _Mode | None = None
        self._thread: int | None = None
        self.notes: list[str] = []
        self._graph: Graph | None = None
        self._read_model(model)

    # -- set-up ------------------------------------------------------------------------------
    def _read_model(self, model: Any) -> None:
        if model is None:
            return
        items = model.items() if isinstance(model, Mapping) else [("", model)]
        for key, obj in items:
            if isinstance(obj, torch.nn.Module):
                root = key or type(obj).__name__.lower()
                for qual, mod in obj.named_modules():
                    self._mnames[id(mod)] = f"{root}.{qual}" if qual else root
                    self._mtypes[id(mod)] = type(mod).__name__
                for qual, p in obj.named_parameters():
                    self._params[id(p)] = f"{root}.{qual}"
                    owner = obj.get_submodule(qual.rpartition(".")[0]) if "." in qual else obj
                    self._ptypes[id(p)] = type(owner).__name__
            elif isinstance(obj, torch.Tensor):
                if not key:
                    raise TypeError("record: a tensor in `model` needs a name (pass a mapping "
                                    "such as {'W': W})")
                self._params[id(obj)] = key
                self._explicit_names.add(key)
            else:
                raise TypeError(f"record: model must be a torch.nn.Module or a mapping of names "
                                f"to modules or tensors; got {type(obj).__name__}"
                                f"{' for ' + repr(key) if key else ''}")

    def __enter__(self) -> "Recording":
        if getattr(_ACTIVE, "rec", None) is not None:
            raise RuntimeError("record: a recording is already active in this thread; "
                               "recordings do not nest")
        if self._graph is not None or self.nodes:
            raise RuntimeError("record: this Recording was used already; call record() again")
        _ACTIVE.rec = self
        self._thread = threading.get_ident()
        mm = torch.nn.modules.module
        self._module_hooks = [mm.register_module_forward_pre_hook(self._pre_hook),
                              mm.register_module_forward_hook(self._post_hook, always_call=True)]
        self._mode = _Mode(self)
        self._mode.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if self._mode is not None:
                self._mode.__exit__(*exc)
        finally:
            self._mode = None
            for h in self._module_hooks:
                h.remove()
            self._module_hooks = []
            while self._stack:  # a forward that raised: close its scopes
                cm, _, old = self._stack.pop()
                if cm is not None:
                    cm.__exit__(None, None, None)
                self._cell_step = old
            _ACTIVE.rec = None

    def close(self) -> None:
        """Remove the tensor hooks (done by `graph` too): later backward passes go unrecorded."""
        for h in self._hooks:
            h.remove()
        self._hooks = []

    # -- module hooks: scopes, cell steps, cell names ------------------------------------------
    def _scope_part(self, module: Any) -> str | None:
        if type(module).__module__ == "torch.nn.modules.loss":
            return None  # a loss module: L stays at its caller's scope, as in tinygraph
        qual = self._mnames.get(id(module))
        part = qual.rpartition(".")[2] if qual else type(module).__name__.lower()
        return part.replace("/", "_") or type(module).__name__.lower()

    def _pre_hook(self, module: Any, args: tuple) -> None:
        if threading.get_ident() != self._thread or self._paused:
            return
        self._mtypes.setdefault(id(module), type(module).__name__)
        for attr, p in module.named_parameters(recurse=False):
            if id(p) not in self._params:
                self._params[id(p)] = f"{self._scope_part(module)}.{attr}"
                self._ptypes[id(p)] = type(module).__name__
        part = self._scope_part(module)
        cm = None
        if part is not None:
            cm = tinygraph.scope(part)
            cm.__enter__()
        self._stack.append((cm, module, self._cell_step))
        if cells.is_cell(module):
            k = self._calls[id(module)] = self._calls.get(id(module), 0) + 1
            self._cell_step = k

    def _post_hook(self, module: Any, args: tuple, output: Any) -> None:
        if threading.get_ident() != self._thread or not self._stack or self._paused:
            return
        cm, mod, old = self._stack.pop()
        try:
            if cells.is_cell(module) and self._cell_step is not None:
                self._name_cell(args, output, self._cell_step)
        finally:
            if cm is not None:
                cm.__exit__(None, None, None)
            self._cell_step = old

    def _name_cell(self, args: tuple, output: Any, k: int) -> None:
        """x(t) in, h(t) (and c(t)) out; at the first call the state passed in is h(0)."""
        outs = output if isinstance(output, (tuple, list)) else (output,)
        names = ("h", "c") if len(outs) == 2 else ("h",)
        for t, nm in zip(outs, names):
            self._name_if_unnamed(t, nm)
        if args:
            self._name_if_unnamed(args[0], "x")
        if len(args) > 1 and args[1] is not None:
            hx = args[1] if isinstance(args[1], (tuple, list)) else (args[1],)
            for t, nm in zip(hx, names):
                n = self._ids.get(id(t)) if isinstance(t, torch.Tensor) else None
                if n is not None and self.nodes[n].op == "leaf" and self.nodes[n].name is None:
                    self.nodes[n].name = nm
                    self.nodes[n].step, self.nodes[n].fixed = k - 1, True

    def _name_if_unnamed(self, t: Any, name: str) -> None:
        n = self._ids.get(id(t)) if isinstance(t, torch.Tensor) else None
        if n is not None and self.nodes[n].name is None and self.nodes[n].kind != "param":
            self.nodes[n].name = name

    def name(self, tensor: Any, name: str) -> Any:
        """Name a recorded tensor for the views (``rec.name(h, "h")``, like ``.named``).

        Returns the tensor, so it can wrap an expression.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"Recording.name: name must be a non-empty string, got {name!r}")
        n = self._ids.get(id(tensor)) if isinstance(tensor, torch.Tensor) else None
        if n is None:
            raise ValueError(f"Recording.name({name!r}): this tensor was not recorded (made "
                             f"outside the recording, or from constants only)")
        self.nodes[n].name = name
        return tensor

    # -- nodes ---------------------------------------------------------------------------------
    def _now(self) -> tuple[int | None, bool]:
        s = _tape.STATE.step
        if s is not None:
            self._explicit = True
            return s, True
        if self._cell_step is not None:
            return self._cell_step, True
        return None, False

    def _new(self, op: str, kind: str, inputs: tuple, fn: Callable | None,
             step: tuple | None = None, src: tuple | None = None) -> int:
        s, fixed = self._now() if step is None else step
        node = Node(op, kind, inputs, fn, _tape.STATE.scope, s, fixed, src)
        if self._stack:
            node.module = id(self._stack[-1][1])
        self.nodes.append(node)
        return len(self.nodes) - 1

    def _bind(self, n: int, t: Any) -> None:
        """Node `n` is torch's tensor `t`: its value, and torch's gradient through a hook."""
        node = self.nodes[n]
        node.real = True
        node.value = t.detach()
        node.shape, node.dtype, node.requires_grad = list(t.shape), calls.dtype_name(t), t.requires_grad
        self._ids[id(t)] = n
        self._keep.append(t)
        if t.requires_grad:
            self._hooks.append(t.register_hook(_grad_hook(weakref.ref(self), n)))

    def _on_grad(self, n: int, g: Any) -> None:
        self._grads.setdefault(n, []).append(g.detach())

    def _tracked(self, t: Any) -> bool:
        return id(t) in self._ids or id(t) in self._params or t.requires_grad

    def _node_of(self, t: Any, src: tuple | None = None) -> int:
        n = self._ids.get(id(t))
        if n is not None:
            return n
        if id(t) in self._params or isinstance(t, torch.nn.Parameter):
            kind = "param"
        else:
            kind = "input" if t.dim() or t.requires_grad else "const"
        n = self._new("leaf", kind, (), None, step=(None, False) if kind == "param" else None,
                      src=src)
        if kind == "param":
            self.nodes[n].key = self._params.get(id(t))
        self._bind(n, t)
        return n

    def _virtual(self, op: str, inputs: tuple, fn: Callable, name: str | None = None,
                 step: tuple | None = None, kind: str = "op") -> int:
        n = self._new(op, kind, inputs, fn, step=step, src=self._src)
        self.nodes[n].name = name
        return n

    # -- the torch function hook ---------------------------------------------------------------
    def _on_call(self, func: Any, args: tuple, kwargs: dict) -> Any:
        name = calls.func_name(func)
        if name == "backward" and args and isinstance(args[0], torch.Tensor):
            n = self._ids.get(id(args[0]))
            if n is not None:
                self._roots.append(n)
            return func(*args, **kwargs)
        if (self._paused or name in calls.PASS or threading.get_ident() != self._thread
                or not torch.is_grad_enabled()):
            return func(*args, **kwargs)
        if name.startswith("get:"):
            if name not in calls.GETTERS:
                return func(*args, **kwargs)
        template, tkw, tensors = calls.split(args, kwargs)
        if not tensors or not any(self._tracked(t) for t in tensors):
            return func(*args, **kwargs)  # constants only: not recorded (as in tinygraph)
        self._src = calls.user_line() if self.source else None
        if name in calls.CELLS:
            return self._cell(func, args, kwargs, calls.CELLS[name])
        if name in calls.FUSED and self.fused == "cells":
            out = self._fused_call(func, args, kwargs, name)
            if out is not NotImplemented:
                return out
        if name in _PICKS and id(tensors[0]) in self._ids:
            out = self._pick(func, args, kwargs, name, tensors[0])
            if out is not NotImplemented:
                return out
        inplace = calls.is_inplace(name)
        ins = tuple(self._node_of(t, self._src) for t in tensors)
        if inplace:  # keep the value the earlier ops read (and this one reads)
            self.nodes[ins[0]].value = tensors[0].detach().clone()
        rng = torch.get_rng_state() if calls.RANDOM.search(name) else None
        out = func(*args, **kwargs)
        if inplace:
            outs, single = [tensors[0]], True
        elif isinstance(out, torch.Tensor):
            outs, single = [out], True
        elif isinstance(out, (tuple, list)) and out and all(isinstance(o, torch.Tensor)
                                                            for o in out):
            outs, single = list(out), False
        else:
            return out
        if not inplace and single and any(out is t for t in tensors):
            return out  # the same tensor back (x.contiguous(), x.to(x.dtype)): no new node
        if name == "linear":
            self._linear(ins, outs[0])
            return out
        op = calls.GETTERS.get(name) or calls.OP_NAMES.get(name) or name.strip("_")
        for k, o in enumerate(outs):
            n = self._new(op, "op", ins, calls.replay(func, template, tkw, None if single else k,
                                                 inplace, rng), src=self._src)
            self._bind(n, o)
        return out

    def _linear(self, ins: tuple, out: Any) -> None:
        """x W^T + b drawn as matmul (the weight) then add (the bias), as the book writes it."""
        if len(ins) > 2:
            m = self._virtual("matmul", ins[:2], lambda x, w: F.linear(x, w))
            n = self._virtual("add", (m, ins[2]), torch.add)
        else:
            n = self._virtual("matmul", ins[:2], lambda x, w: F.linear(x, w))
        self._bind(n, out)

    # -- fused cells and sequence modules: drawn as their equations ----------------------------
    def _cell(self, func: Any, args: tuple, kwargs: dict, kind: str) -> Any:
        out = func(*args, **kwargs)  # torch's own fused computation: its numbers are untouched
        x, hx, w_ih, w_hh = args[0], args[1], args[2], args[3]
        b_ih = args[4] if len(args) > 4 else kwargs.get("b_ih")
        b_hh = args[5] if len(args) > 5 else kwargs.get("b_hh")
        node = self._node_of
        state = tuple(node(t) for t in hx) if kind == "lstm" else (node(hx),)
        res = cells.cell_equations(self._virtual, kind, node(x), state, node(w_ih), node(w_hh),
                                   None if b_ih is None else node(b_ih),
                                   None if b_hh is None else node(b_hh), None, None, None)
        outs = out if kind == "lstm" else (out,)  # named h (and c) as the cell module's output
        for n, t in zip(res, outs):
            self._bind(n, t)
        return out

    def _fused_call(self, func: Any, args: tuple, kwargs: dict, fname: str) -> Any:
        """nn.RNN / LSTM / GRU: torch runs fused; the graph gets the equivalent cell loop.

        Returns NotImplemented (then the call is recorded as one node) for what the cell loop
        cannot re-run: packed sequences, dropout between layers, LSTM projections.
        """
        kind = calls.FUSED[fname]
        what = f"nn.{ {'tanh': 'RNN', 'relu': 'RNN', 'lstm': 'LSTM', 'gru': 'GRU'}[kind]}"
        where = _tape.STATE.scope or "top level"
        why = None
        if kwargs or len(args) != 9 or (isinstance(args[1], torch.Tensor)
                                        and not args[1].is_floating_point()):
            why = "packed sequence"
        else:
            inp, hx, params, has_b, layers, p, train, bidir, bfirst = args
            if p and train:
                why = "dropout between layers"
            elif len(params) != (4 if has_b else 2) * layers * (2 if bidir else 1):
                why = "projections (proj_size)"
        if why is not None:
            self.notes.append(f"{what} at {where}: {why}, drawn as one node")
            return NotImplemented
        out = func(*args, **kwargs)  # torch's own fused computation: its numbers are untouched
        T, tax = inp.shape[1 if bfirst else 0], 1 if bfirst else 0
        mod = self._stack[-1][1] if self._stack else None
        s0 = _tape.STATE.step
        offset = self._fused_steps.get(id(mod), 0)
        self._fused_steps[id(mod)] = offset + T  # a module called again continues the steps
        if s0 is not None:
            self._explicit = True
        at = [((s0 + t if s0 is not None else offset + t + 1), True) for t in range(-1, T + 1)]
        v = self._virtual
        if self._tracked(inp):
            X = self._node_of(inp)
            seq = [v("getitem", (X,), cells.select(tax, t), "x", at[t + 1]) for t in range(T)]
        else:  # an untracked input: x(t) are leaves, as tinygraph.nn makes them
            seq = [v("leaf", (), cells.const(inp.select(tax, t)), "x", at[t + 1], kind="input")
                   for t in range(T)]
        hxs = tuple(hx) if kind == "lstm" else (hx,)
        finals: list[list] = [[] for _ in hxs]
        per = 4 if has_b else 2
        for layer in range(layers):
            with contextlib.ExitStack() as stack:
                if layers > 1:
                    stack.enter_context(tinygraph.scope(f"layer{layer + 1}"))
                outs = []
                for d in range(2 if bidir else 1):
                    with contextlib.ExitStack() as inner:
                        if bidir:
                            inner.enter_context(tinygraph.scope("bwd" if d else "fwd"))
                        idx = layer * (2 if bidir else 1) + d
                        hs, last = self._fused_direction(kind, seq, hxs, idx,
                                                         params[idx * per:(idx + 1) * per],
                                                         has_b, d == 1, at)
                    outs.append(hs)
                    for j, f in enumerate(finals):
                        f.append(last[j])
                seq = outs[0] if not bidir else [
                    v("concat", (outs[0][t], outs[1][t]), cells.cat, step=at[t + 1])
                    for t in range(T)]
        res = [v("stack", tuple(seq), cells.stack(tax), step=(None, True))]
        res += [v("stack", tuple(f), cells.stack(0), step=(None, True)) for f in finals]
        self._parts[res[0]] = (tax, seq)  # out[:, t] is h(t); h_n[k] is layer k's last state
        for n, f in zip(res[1:], finals):
            self._parts[n] = (0, f)
        flat = list(out)  # (output, h_n) or, for an LSTM, (output, h_n, c_n)
        for n, t in zip(res, flat):
            self.nodes[n].check = f"{what} at {where}"
            self._bind(n, t)
        self.notes.append(f"{what} at {where}: the fused call is drawn as its cell loop "
                          f"({layers} layer{'s' if layers > 1 else ''}, "
                          f"{'bidirectional, ' if bidir else ''}{T} steps), re-run with the "
                          f"same weights and checked equal to torch's output")
        return out

    def _pick(self, func: Any, args: tuple, kwargs: dict, name: str, src: Any) -> Any:
        """``out[:, t]``, ``out.select(1, t)``, ``out.unbind(1)``, ``h_n[-1]``, ``h_n.squeeze(0)``
        on a fused module's output read one step's node: drawn from h(t) itself, so a head
        applied per step (or to the last step, fig. 10.5) gets its step."""
        stack = self._ids[id(src)]
        axis, parts = self._parts.get(stack, (None, None))
        if parts is None:
            return NotImplemented
        picked = _picked(name, args[1:], kwargs, axis, len(parts), src.dim())
        if picked is None:
            return NotImplemented
        out = func(*args, **kwargs)
        outs = list(out) if name == "unbind" else [out]
        for idx, t in zip(picked, outs):
            part = parts[idx]
            n = self._new("getitem", "op", (part,), _same, step=(self.nodes[part].step, True),
                          src=self._src)
            self._bind(n, t)
            self._picks.setdefault(stack, []).append((n, idx))
        return out

    def _fused_direction(self, kind: str, seq: list, hxs: tuple, idx: int, weights: Any,
                         has_b: bool, backward: bool, at: list) -> tuple[list, tuple]:
        """One layer, one direction of a fused module: ([h(1)..h(T)], final state)."""
        v = self._virtual
        w = [self._node_of(t) for t in weights]
        for n in w:
            self.nodes[n].scope = _tape.STATE.scope  # layer 2's U2 lives in layer2/
        T = len(seq)
        hname = "g" if backward else "h"   # the book's names in a bidirectional RNN
        init = at[T + 1] if backward else at[0]
        state = []
        for j, h0 in enumerate(hxs):
            nm = hname if j == 0 else "c"
            if self._tracked(h0):
                state.append(v("getitem", (self._node_of(h0),), cells.select(0, idx), nm, init))
            else:
                state.append(v("leaf", (), cells.const(h0[idx]), nm, init, kind="input"))
        hs = [0] * T
        st = tuple(state)
        for t in (range(T - 1, -1, -1) if backward else range(T)):
            st = cells.cell_equations(v, kind, seq[t], st, w[0], w[1], w[2] if has_b else None,
                                      w[3] if has_b else None, at[t + 1], hname, "c")
            hs[t] = st[0]
        return hs, st

    # -- the graph -----------------------------------------------------------------------------
    def graph(self, output: Any = None, edge_grads: bool = True,
              flow: bool | None = None) -> Graph:
        """The recorded graph in tinygraph's schema.

        Parameters
        ----------
        output : torch.Tensor, optional
            The node the graph ends in (default: the tensor ``backward()`` was called on, else
            the last recorded one). Only what it depends on is kept, as `tinygraph.trace` does.
        edge_grads : bool
            Compute the gradient sent back along every edge (one vector-Jacobian product per
            op); False leaves edges' ``grad_norm`` None (faster for very long recordings).

        Returns
        -------
        tinygraph.Graph
            ``.to_networkx()``, ``.save(path)``; graph attributes ``engine`` ("torch"),
            ``version`` (torch's), ``schema``, ``output``, ``loss``, ``notes`` and (see
            `flow`) ``flow``.

        Raises
        ------
        ValueError
            If nothing was recorded, or a fused module's re-run differs from torch's output.
        """
        if not self.nodes:
            raise ValueError("Recording.graph: nothing was recorded; run the torch code inside "
                             "`with record(...)` (ops on constants only are not recorded)")
        self._paused = True
        try:
            self.close()
            out = self._output(output)
            keep = self._ancestors(out)
            self._values(keep)
            grads = self._sweep(keep, edge_grads)
            infer_steps(self.nodes, keep, self._explicit)
            infer_names(self.nodes, keep, out)
            labels = param_labels(self.nodes, keep, self._explicit_names)
            if flow is None:
                T = torch_flow.steps_of(self.nodes, keep)
                flow = bool(self._grads) and T <= torch_flow.MAX_STEPS
                if self._grads and not flow:
                    self.notes.append(
                        f"per-loss-term flow not computed: {T} steps is more than "
                        f"{torch_flow.MAX_STEPS} steps (its cost grows as T²); "
                        f"graph(flow=True) computes it anyway")
            gf = None
            if flow:
                gf, note = torch_flow.compute(self.nodes, keep, labels)
                self.notes.append(note)
            return self._export(keep, out, grads, labels, gf)
        finally:
            self._paused = False

    def _output(self, output: Any) -> int:
        if output is None:
            return self._roots[-1] if self._roots else len(self.nodes) - 1
        n = self._ids.get(id(output)) if isinstance(output, torch.Tensor) else None
        if n is None:
            raise ValueError("Recording.graph: `output` was not recorded in this recording")
        return n

    def _ancestors(self, out: int) -> list[int]:
        seen = bytearray(out + 1)
        seen[out] = 1
        for i in range(out, -1, -1):  # inputs always have smaller ids: one reverse pass
            if seen[i]:
                for j in self.nodes[i].inputs:
                    seen[j] = 1
        return [i for i in range(out + 1) if seen[i]]

    def _values(self, keep: list[int]) -> None:
        N = self.nodes
        with torch.no_grad():
            for i in keep:
                node = N[i]
                if node.fn is None or (node.real and node.check is None):
                    continue
                val = node.fn(*[N[j].value for j in node.inputs])
                if node.check is not None:
                    self._check(node, val)
                    continue
                node.value = val
                node.shape, node.dtype = list(val.shape), calls.dtype_name(val)
                node.requires_grad = (val.is_floating_point() or val.is_complex()) and any(
                    N[j].requires_grad for j in node.inputs)

    def _check(self, node: Node, val: Any) -> None:
        real = node.value
        if val.shape != real.shape:
            raise ValueError(f"{node.check}: the cell loop re-run has shape {tuple(val.shape)}, "
                             f"torch's fused output {tuple(real.shape)}; record with "
                             f"fused='node' to draw the call as one node")
        diff = float((val.double() - real.double()).abs().max()) if val.numel() else 0.0
        scale = max(1.0, float(real.double().abs().max())) if real.numel() else 1.0
        if not diff <= 1e-6 * scale:
            raise ValueError(f"{node.check}: the cell loop re-run differs from torch's fused "
                             f"output by {diff:.3g} (expected <= 1e-6); record with "
                             f"fused='node' to draw the call as one node")
        note = f"max |difference| {diff:.1e}"
        for k, text in enumerate(self.notes):
            if text.startswith(str(node.check)) and "re-run" in text and "difference" not in text:
                self.notes[k] = text + f" ({note})"
                break

    def _sweep(self, keep: list[int], edge_grads: bool) -> dict:
        """Gradients: torch's own on real nodes (hooks); on shadow nodes, torch's gradient at
        the module output sent back through the equations; and per edge, each op's VJP."""
        N = self.nodes
        grads: dict[int, Any] = {}
        for n, gs in self._grads.items():
            total = gs[0]
            for g in gs[1:]:
                total = total + g
            grads[n] = total
        kept = set(keep)
        for stack, picks in self._picks.items():  # what a picked step sent is not sent twice
            if stack in grads and stack in kept:
                axis = self._parts[stack][0]
                g = grads[stack].clone()
                for n, idx in picks:
                    if n in kept and n in grads:
                        g.select(axis, idx).sub_(grads[n])
                grads[stack] = g
        self.edge_grads: dict[tuple[int, int], Any] = {}
        for n in reversed(keep):
            node = N[n]
            g = grads.get(n)
            if g is None or node.fn is None or not node.inputs:
                continue
            need = [N[j].requires_grad for j in node.inputs]
            if not any(need) or not (edge_grads or any(not N[j].real for j in node.inputs)):
                continue
            parts = calls.vjp(node.fn, [N[j].value for j in node.inputs], need, g)
            for j, part in zip(node.inputs, parts):
                if part is None or j not in kept:
                    continue
                e = (j, n)
                self.edge_grads[e] = part if e not in self.edge_grads else self.edge_grads[e] + part
                if not N[j].real:  # a shadow node: its gradient is what its consumers send
                    grads[j] = part if j not in grads else grads[j] + part
        if not edge_grads:
            self.edge_grads = {}
        return grads


    def _export(self, keep: list[int], out: int, grads: dict, labels: dict,
                gf: Any = None) -> Graph:
        N = self.nodes
        new_id = {old: k for k, old in enumerate(keep)}
        nodes, edges = [], []
        for k, i in enumerate(keep):
            node = N[i]
            params = [labels[j] for j in node.inputs if N[j].kind == "param"]
            g = grads.get(i)
            nodes.append({
                "id": k, "op": node.op, "kind": node.kind,
                "name": labels.get(i) if node.kind == "param" else node.name,
                "shape": list(node.shape or []), "dtype": node.dtype, "scope": node.scope,
                "step": None if node.kind == "param" else node.step,
                "param": ",".join(dict.fromkeys(params)) or None,
                "requires_grad": bool(node.requires_grad),
                "src": node.src and node.src[0], "code": node.src and node.src[1],
                "value_norm": calls.norm(node.value), "grad_norm": calls.norm(g)})
            seen: dict[int, list] = {}
            for pos, j in enumerate(node.inputs):
                seen.setdefault(j, []).append(pos)
            for j, args in seen.items():
                edges.append({"source": new_id[j], "target": k, "arg": args[0], "args": args,
                              "grad_norm": calls.norm(self.edge_grads.get((j, i)))})
        o = new_id[out]
        attrs = {"engine": "torch", "version": torch.__version__, "schema": SCHEMA_VERSION,
                 "output": o, "loss": o if math.prod(N[out].shape or []) == 1 else None,
                 "adapter": f"tinygraph.adapters.torch {tinygraph.__version__}",
                 "notes": list(self.notes)}
        if gf is not None:
            attrs["flow"] = gf.to_attrs(new_id)
        self._graph = Graph(nodes, edges, attrs)
        return self._graph




_PICKS = frozenset({"__getitem__", "select", "unbind", "squeeze"})


def _picked(name: str, rest: tuple, kwargs: dict, axis: int, n: int, ndim: int) -> list | None:
    """Which entries along `axis` a getitem / select / unbind / squeeze takes, when it takes
    whole entries only (else None: recorded as a plain op)."""
    def entry(i: Any) -> int | None:
        if isinstance(i, bool) or not isinstance(i, int) or not -n <= i < n:
            return None
        return i % n

    if name == "unbind":
        dim = rest[0] if rest else kwargs.get("dim", 0)
        return list(range(n)) if dim % ndim == axis else None
    if name == "select":
        dim, i = (rest + (None, None))[:2] if len(rest) >= 2 else (kwargs.get("dim"),
                                                                   kwargs.get("index"))
        e = entry(i)
        return [e] if dim is not None and dim % ndim == axis and e is not None else None
    if name == "squeeze":
        dim = rest[0] if rest else kwargs.get("dim")
        return [0] if n == 1 and dim is not None and dim % ndim == axis else None
    index = rest[0] if rest else None
    index = index if isinstance(index, tuple) else (index,)
    if len(index) != axis + 1 or any(not (isinstance(i, slice) and i == slice(None))
                                     for i in index[:axis]):
        return None
    e = entry(index[axis])
    return None if e is None else [e]


def _same(a: Any) -> Any:
    return a


def _grad_hook(ref: Any, n: int) -> Callable:
    def hook(g: Any) -> None:
        rec = ref()
        if rec is not None:
            rec._on_grad(n, g)
        return None  # observe only: torch's gradient goes on unchanged
    return hook

