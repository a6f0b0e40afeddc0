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

Pieces: this module (the recording: hooks, nodes), `torch_fused` (fused calls as their
equations), `torch_graph` (`graph()`: the export), `torch_calls` (reading one torch
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
from tinygraph.export import Graph

from . import torch_calls as calls
from . import torch_cells as cells
from .torch_fused import _PICKS, FusedCalls
from .torch_graph import GraphBuilder
from .torch_infer import Node

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


class Recording(FusedCalls, GraphBuilder):
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

def _grad_hook(ref: Any, n: int) -> Callable:
    def hook(g: Any) -> None:
        rec = ref()
        if rec is not None:
            rec._on_grad(n, g)
        return None  # observe only: torch's gradient goes on unchanged
    return hook

