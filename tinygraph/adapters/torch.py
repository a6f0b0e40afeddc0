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

Time steps come from ``step(t)`` (the same context as ``tinygraph.step``), else from the calls
of a cell module (its k-th call is step k) and the time loop of a fused module, carried forward
to the ops that read one step only. Names follow the book: x, h (g backward, c the LSTM cell
state, gates i f g o / r z n as in `tinygraph.nn`), o, L, y; torch's recurrent parameters
``weight_ih`` -> U, ``weight_hh`` -> W, ``bias_ih``/``bias_hh`` -> b_ih/b_hh (layer k > 1:
U2, W2, ...), the output ``Linear`` -> V and c, an ``Embedding`` -> E; other parameters keep a
short label (``fc.W``, ``fc.b``).
"""
from __future__ import annotations

import math
import os
import re
import sys
import threading
import weakref
from typing import Any, Callable, Iterator, Mapping

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

__all__ = ["record", "Recording", "step", "scope"]

#: the time-step context: tinygraph's own, so one loop can tag tinygraph and torch code alike
step = tinygraph.step
#: the scope context (module calls open one per module automatically)
scope = tinygraph.scope

# ------------------------------------------------------------------------------------------------
# how torch calls are read
# ------------------------------------------------------------------------------------------------

#: calls that never make a node (queries, printing, bookkeeping)
_PASS = frozenset({
    "dim", "size", "numel", "item", "tolist", "numpy", "stride", "data_ptr", "is_contiguous",
    "__repr__", "__str__", "__format__", "__bool__", "__len__", "__iter__", "__hash__",
    "__reduce_ex__", "__deepcopy__", "register_hook", "retain_grad", "requires_grad_",
    "_set_grad_enabled", "is_floating_point", "element_size", "nelement", "storage_offset",
    "untyped_storage", "__array__", "__index__", "__int__", "__float__", "__contains__",
})
#: property reads that are ops
_GETTERS = {"get:T": "transpose", "get:mT": "transpose", "get:H": "transpose",
            "get:mH": "transpose", "get:real": "real", "get:imag": "imag"}
#: torch names -> registry-style names (tinygraph's ops where they exist)
_OP_NAMES = {
    "__add__": "add", "__radd__": "add", "__iadd__": "add", "add_": "add",
    "__sub__": "sub", "__isub__": "sub", "sub_": "sub", "__rsub__": "rsub",
    "__mul__": "mul", "__rmul__": "mul", "__imul__": "mul", "mul_": "mul",
    "__truediv__": "div", "__itruediv__": "div", "div_": "div", "__rtruediv__": "rdiv",
    "true_divide": "div", "__matmul__": "matmul", "__rmatmul__": "matmul", "mm": "matmul",
    "bmm": "matmul", "__neg__": "neg", "negative": "neg", "__pow__": "pow", "__rpow__": "rpow",
    "__getitem__": "getitem", "__setitem__": "setitem", "select": "getitem", "t": "transpose",
    "permute": "transpose", "cat": "concat", "concatenate": "concat", "chunk": "split",
    "unbind": "split", "tanh_": "tanh", "sigmoid_": "sigmoid", "relu_": "relu",
}
#: loss functions: output L, first argument o, target y
_LOSSES = frozenset({
    "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div", "poisson_nll_loss",
    "gaussian_nll_loss", "soft_margin_loss", "multilabel_soft_margin_loss"})
_RANDOM = re.compile(r"dropout|rrelu|bernoulli|multinomial|^rand|normal")
_INPLACE_DUNDER = frozenset({"__iadd__", "__isub__", "__imul__", "__itruediv__", "__setitem__",
                             "__ipow__", "__iand__", "__ior__"})
#: fused single-step cells, and fused whole-sequence modules
_CELLS = {"rnn_tanh_cell": "tanh", "rnn_relu_cell": "relu", "lstm_cell": "lstm",
          "gru_cell": "gru"}
_FUSED = {"rnn_tanh": "tanh", "rnn_relu": "relu", "lstm": "lstm", "gru": "gru"}
_STATES = frozenset({"h", "g", "s", "c"})
_GENERIC = re.compile(r"^(weight|bias)(_[a-z]+)?(_l\d+)?(_reverse)?$")
_RNN_PARAM = re.compile(r"^(weight|bias)_(ih|hh|hr)(?:_l(\d+))?(_reverse)?$")
_LETTER = {("weight", "ih"): "U", ("weight", "hh"): "W", ("weight", "hr"): "P",
           ("bias", "ih"): "b_ih", ("bias", "hh"): "b_hh"}

_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))
_THIS = os.path.abspath(__file__)
_CTX = os.path.abspath(sys.modules["contextlib"].__file__)


def _func_name(func: Any) -> str:
    name = getattr(func, "__name__", None)
    if name == "__get__":  # a property read such as x.T: name it by the property
        return "get:" + str(getattr(getattr(func, "__self__", None), "__name__", "?"))
    return name or type(func).__name__


def _is_inplace(name: str) -> bool:
    return name in _INPLACE_DUNDER or (name.endswith("_") and not name.startswith("_"))


def _user_line() -> str | None:
    """`file.py:line` of the first frame outside torch and this adapter."""
    frame = sys._getframe(2)
    while frame is not None:
        fname = os.path.abspath(frame.f_code.co_filename)
        if not (fname.startswith(_TORCH_DIR) or fname == _THIS or fname == _CTX
                or fname.startswith("<frozen")):
            rel = os.path.relpath(fname)
            return f"{os.path.basename(fname) if rel.startswith('..') else rel}:{frame.f_lineno}"
        frame = frame.f_back
    return None


class _Slot:
    __slots__ = ("i",)

    def __init__(self, i: int) -> None:
        self.i = i


def _split(args: tuple, kwargs: dict) -> tuple[tuple, dict, list]:
    """(args, kwargs) with every tensor (also inside a list or tuple) replaced by a slot, and
    the tensors in argument order. Two levels deep: enough for torch.cat and the fused RNNs."""
    tensors: list = []

    def one(a: Any) -> Any:
        if isinstance(a, torch.Tensor):
            tensors.append(a)
            return _Slot(len(tensors) - 1)
        if isinstance(a, (list, tuple)) and any(isinstance(x, (torch.Tensor, list, tuple))
                                                for x in a):
            inner = []
            for x in a:
                if isinstance(x, torch.Tensor):
                    tensors.append(x)
                    inner.append(_Slot(len(tensors) - 1))
                elif isinstance(x, (list, tuple)):
                    row = []
                    for y in x:
                        if isinstance(y, torch.Tensor):
                            tensors.append(y)
                            y = _Slot(len(tensors) - 1)
                        row.append(y)
                    inner.append(type(x)(row))
                else:
                    inner.append(x)
            return type(a)(inner) if type(a) in (list, tuple) else list(inner)
        return a

    targs = tuple(one(a) for a in args)
    tkw = {k: one(v) for k, v in kwargs.items()}
    return targs, tkw, tensors


def _fill(template: tuple, tkw: dict, vals: list) -> tuple[tuple, dict]:
    def one(a: Any) -> Any:
        if isinstance(a, _Slot):
            return vals[a.i]
        if isinstance(a, (list, tuple)) and any(isinstance(x, (_Slot, list, tuple)) for x in a):
            inner = []
            for x in a:
                if isinstance(x, _Slot):
                    x = vals[x.i]
                elif isinstance(x, (list, tuple)):
                    x = type(x)(vals[y.i] if isinstance(y, _Slot) else y for y in x)
                inner.append(x)
            return type(a)(inner)
        return a

    return tuple(one(a) for a in template), {k: one(v) for k, v in tkw.items()}


def _replay(func: Callable, template: tuple, tkw: dict, k: int | None, inplace: bool,
            rng: Any) -> Callable:
    """fn(*input values) -> this node's value, recomputed by the same torch call (for the
    vector-Jacobian product of the op alone)."""
    def fn(*vals: Any) -> Any:
        vals = list(vals)
        if inplace:  # never write into the recorded inputs: replay on a copy
            vals[0] = vals[0].clone()
        a, kw = _fill(template, tkw, vals)
        if rng is not None:  # the same random draw (dropout mask) as the recorded call
            with torch.random.fork_rng(devices=[]):
                torch.set_rng_state(rng)
                out = func(*a, **kw)
        else:
            out = func(*a, **kw)
        if inplace:
            return vals[0]
        return out if k is None else out[k]
    return fn


def _dtype(t: Any) -> str:
    return str(t.dtype).replace("torch.", "")


# ------------------------------------------------------------------------------------------------
# the record
# ------------------------------------------------------------------------------------------------

class _Node:
    """One recorded node. ``fn`` recomputes its value from its inputs' values; ``real`` tells
    that torch computed it (then ``value`` is torch's, and a hook collects torch's gradient)."""

    __slots__ = ("op", "kind", "name", "scope", "step", "fixed", "src", "inputs", "fn", "value",
                 "real", "shape", "dtype", "requires_grad", "module", "check", "key")

    def __init__(self, op: str, kind: str, inputs: tuple, fn: Callable | None, scope: str,
                 step: int | None, fixed: bool, src: str | None) -> None:
        self.op, self.kind, self.inputs, self.fn = op, kind, inputs, fn
        self.scope, self.step, self.fixed, self.src = scope, step, fixed, src
        self.name: str | None = None
        self.value: Any = None
        self.real = False
        self.shape: list | None = None
        self.dtype: str | None = None
        self.requires_grad = False
        self.module: int | None = None     # id of the module whose call made it (Linear roles)
        self.check: str | None = None      # a fused module's output: compare shadow and torch
        self.key: str | None = None        # a parameter's qualified name


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
    Every recorded tensor is kept alive until `graph` is called (its value is read then).
    Tensor hooks stay registered until `graph` or `close`, so ``backward()`` may also come
    after the ``with`` block; gradients of a later backward are added up, as torch adds them.
    """

    def __init__(self, model: Any = None, fused: str = "cells", source: bool = True) -> None:
        self.fused, self.source = fused, source
        self.nodes: list[_Node] = []
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
        self._explicit = False
        self._roots: list[int] = []
        self._paused = False
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
        if _is_cell(module):
            k = self._calls[id(module)] = self._calls.get(id(module), 0) + 1
            self._cell_step = k

    def _post_hook(self, module: Any, args: tuple, output: Any) -> None:
        if threading.get_ident() != self._thread or not self._stack or self._paused:
            return
        cm, mod, old = self._stack.pop()
        try:
            if _is_cell(module) and self._cell_step is not None:
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
             step: tuple | None = None, src: str | None = None) -> int:
        s, fixed = self._now() if step is None else step
        node = _Node(op, kind, inputs, fn, _tape.STATE.scope, s, fixed, src)
        if self._stack:
            node.module = id(self._stack[-1][1])
        self.nodes.append(node)
        return len(self.nodes) - 1

    def _bind(self, n: int, t: Any) -> None:
        """Node `n` is torch's tensor `t`: its value, and torch's gradient through a hook."""
        node = self.nodes[n]
        node.real = True
        node.value = t.detach()
        node.shape, node.dtype, node.requires_grad = list(t.shape), _dtype(t), t.requires_grad
        self._ids[id(t)] = n
        self._keep.append(t)
        if t.requires_grad:
            self._hooks.append(t.register_hook(_grad_hook(weakref.ref(self), n)))

    def _on_grad(self, n: int, g: Any) -> None:
        self._grads.setdefault(n, []).append(g.detach())

    def _tracked(self, t: Any) -> bool:
        return id(t) in self._ids or id(t) in self._params or t.requires_grad

    def _node_of(self, t: Any, src: str | None = None) -> int:
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
        name = _func_name(func)
        if name == "backward" and args and isinstance(args[0], torch.Tensor):
            n = self._ids.get(id(args[0]))
            if n is not None:
                self._roots.append(n)
            return func(*args, **kwargs)
        if (self._paused or name in _PASS or threading.get_ident() != self._thread
                or not torch.is_grad_enabled()):
            return func(*args, **kwargs)
        if name.startswith("get:"):
            if name not in _GETTERS:
                return func(*args, **kwargs)
        template, tkw, tensors = _split(args, kwargs)
        if not tensors or not any(self._tracked(t) for t in tensors):
            return func(*args, **kwargs)  # constants only: not recorded (as in tinygraph)
        self._src = _user_line() if self.source else None
        if name in _CELLS:
            return self._cell(func, args, kwargs, tensors, _CELLS[name])
        if name in _FUSED and self.fused == "cells":
            out = self._fused_call(func, args, kwargs, tensors, name)
            if out is not NotImplemented:
                return out
        inplace = _is_inplace(name)
        ins = tuple(self._node_of(t, self._src) for t in tensors)
        if inplace:  # keep the value the earlier ops read (and this one reads)
            self.nodes[ins[0]].value = tensors[0].detach().clone()
        rng = torch.get_rng_state() if _RANDOM.search(name) else None
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
        op = _GETTERS.get(name) or _OP_NAMES.get(name) or name.strip("_")
        for k, o in enumerate(outs):
            n = self._new(op, "op", ins, _replay(func, template, tkw, None if single else k,
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
    def _cell(self, func: Any, args: tuple, kwargs: dict, tensors: list, kind: str) -> Any:
        out = func(*args, **kwargs)  # torch's own fused computation: its numbers are untouched
        x, hx, w_ih, w_hh = args[0], args[1], args[2], args[3]
        b_ih = args[4] if len(args) > 4 else kwargs.get("b_ih")
        b_hh = args[5] if len(args) > 5 else kwargs.get("b_hh")
        node = self._node_of
        state = tuple(node(t) for t in hx) if kind == "lstm" else (node(hx),)
        res = self._cell_equations(kind, node(x), state, node(w_ih), node(w_hh),
                                   None if b_ih is None else node(b_ih),
                                   None if b_hh is None else node(b_hh), None, None, None)
        outs = out if kind == "lstm" else (out,)  # named h (and c) as the cell module's output
        for n, t in zip(res, outs):
            self._bind(n, t)
        return out

    def _cell_equations(self, kind: str, x: int, state: tuple, U: int, W: int, bi: int | None,
                        bh: int | None, st: tuple | None, hname: str | None,
                        cname: str | None) -> tuple:
        """Shadow nodes of one step of a cell; returns (h,) or (h, c)."""
        v = self._virtual

        def proj(a: int, w: int, b: int | None) -> int:
            m = v("matmul", (a, w), lambda a, w: F.linear(a, w), step=st)
            return m if b is None else v("add", (m, b), torch.add, step=st)

        px, ph = proj(x, U, bi), proj(state[0], W, bh)
        if kind in ("tanh", "relu"):
            a = v("add", (px, ph), torch.add, step=st)
            return (v(kind, (a,), torch.tanh if kind == "tanh" else torch.relu, hname, st),)
        if kind == "lstm":
            gates = v("add", (px, ph), torch.add, step=st)
            i, f, g, o = (v("split", (gates,), _chunk(4, k), step=st) for k in range(4))
            i = v("sigmoid", (i,), torch.sigmoid, "i", st)
            f = v("sigmoid", (f,), torch.sigmoid, "f", st)
            g = v("tanh", (g,), torch.tanh, "g", st)
            o = v("sigmoid", (o,), torch.sigmoid, "o", st)
            fc = v("mul", (f, state[1]), torch.mul, step=st)
            ig = v("mul", (i, g), torch.mul, step=st)
            c = v("add", (fc, ig), torch.add, cname, st)
            tc = v("tanh", (c,), torch.tanh, step=st)
            return v("mul", (o, tc), torch.mul, hname, st), c
        xr, xz, xn = (v("split", (px,), _chunk(3, k), step=st) for k in range(3))
        hr, hz, hn = (v("split", (ph,), _chunk(3, k), step=st) for k in range(3))
        r = v("sigmoid", (v("add", (xr, hr), torch.add, step=st),), torch.sigmoid, "r", st)
        z = v("sigmoid", (v("add", (xz, hz), torch.add, step=st),), torch.sigmoid, "z", st)
        rh = v("mul", (r, hn), torch.mul, step=st)
        n = v("tanh", (v("add", (xn, rh), torch.add, step=st),), torch.tanh, "n", st)
        keep = v("rsub", (z,), lambda z: 1 - z, step=st)
        a = v("mul", (keep, n), torch.mul, step=st)
        b = v("mul", (z, state[0]), torch.mul, step=st)
        return (v("add", (a, b), torch.add, hname, st),)

    def _fused_call(self, func: Any, args: tuple, kwargs: dict, tensors: list,
                    fname: str) -> Any:
        """nn.RNN / LSTM / GRU: torch runs fused; the graph gets the equivalent cell loop."""
        kind = _FUSED[fname]
        what = f"nn.{ {'tanh': 'RNN', 'relu': 'RNN', 'lstm': 'LSTM', 'gru': 'GRU'}[kind]}"
        where = _tape.STATE.scope or "top level"
        if kwargs or len(args) != 9 or (isinstance(args[1], torch.Tensor)
                                        and not args[1].is_floating_point()):
            self.notes.append(f"{what} at {where}: packed sequence, drawn as one node")
            return NotImplemented
        inp, hx, params, has_b, layers, p, train, bidir, bfirst = args
        dirs = 2 if bidir else 1
        per = 4 if has_b else 2
        if p and train:
            self.notes.append(f"{what} at {where}: dropout between layers, drawn as one node")
            return NotImplemented
        if len(params) != per * layers * dirs:
            self.notes.append(f"{what} at {where}: projections (proj_size), drawn as one node")
            return NotImplemented
        out = func(*args, **kwargs)  # torch's own fused computation: its numbers are untouched
        mod = self._stack[-1][1] if self._stack else None
        T = inp.shape[1 if bfirst else 0]
        tax = 1 if bfirst else 0
        s0 = _tape.STATE.step
        offset = self._fused_steps.get(id(mod), 0)
        self._fused_steps[id(mod)] = offset + T
        if s0 is not None:
            self._explicit = True

        def at(t: int) -> tuple:  # step of time index t (0-based)
            return (s0 + t if s0 is not None else offset + t + 1), True

        none = (None, True)
        v = self._virtual
        if self._tracked(inp):
            X = self._node_of(inp)
            seq = [v("getitem", (X,), _select(tax, t), "x", at(t)) for t in range(T)]
        else:
            seq = [v("leaf", (), _const(inp.select(tax, t)), "x", at(t), kind="input")
                   for t in range(T)]
        hxs = tuple(hx) if kind == "lstm" else (hx,)
        hx_nodes = [self._node_of(h) if self._tracked(h) else None for h in hxs]
        finals: list[list] = [[] for _ in hxs]
        base = _tape.STATE.scope
        for layer in range(layers):
            outs_d = []
            for d in range(dirs):
                parts = ([f"layer{layer + 1}"] if layers > 1 else []) + (
                    ["fwd" if d == 0 else "bwd"] if bidir else [])
                _tape.STATE.scope = "/".join([base] + parts if base else parts)
                idx = (layer * dirs + d)
                w = [self._node_of(t) for t in params[idx * per:(idx + 1) * per]]
                for j, t in enumerate(params[idx * per:(idx + 1) * per]):
                    self.nodes[w[j]].scope = _tape.STATE.scope  # U2 of layer 2 lives there
                hname = "g" if d else "h"
                init = (-1 if d == 0 else T)
                state = []
                for j, (h0, hn) in enumerate(zip(hxs, hx_nodes)):
                    nm = hname if j == 0 else "c"
                    if hn is None:
                        state.append(v("leaf", (), _const(h0[idx]), nm, at(init), kind="input"))
                    else:
                        state.append(v("getitem", (hn,), _select(0, idx), nm, at(init)))
                state = tuple(state)
                hs = [0] * T
                for t in (range(T) if d == 0 else range(T - 1, -1, -1)):
                    state = self._cell_equations(kind, seq[t], state, w[0], w[1],
                                                 w[2] if has_b else None,
                                                 w[3] if has_b else None, at(t), hname, "c")
                    hs[t] = state[0]
                for j in range(len(hxs)):
                    finals[j].append(state[j])
                outs_d.append(hs)
            _tape.STATE.scope = "/".join([base, f"layer{layer + 1}"] if base else
                                         [f"layer{layer + 1}"]) if layers > 1 else base
            if bidir:
                seq = [v("concat", (outs_d[0][t], outs_d[1][t]), _cat, step=at(t))
                       for t in range(T)]
            else:
                seq = outs_d[0]
        _tape.STATE.scope = base
        res = [v("stack", tuple(seq), _stack(tax), step=none)]
        res += [v("stack", tuple(f), _stack(0), step=none) for f in finals]
        outs = out if isinstance(out, (tuple, list)) else (out,)
        flat = [outs[0]] + (list(outs[1]) if kind == "lstm" and len(outs) == 2
                            and isinstance(outs[1], (tuple, list)) else list(outs[1:]))
        for n, t in zip(res, flat):
            self.nodes[n].check = f"{what} at {where}"
            self._bind(n, t)
        self.notes.append(f"{what} at {where}: the fused call is drawn as its cell loop "
                          f"({layers} layer{'s' if layers > 1 else ''}, "
                          f"{'bidirectional, ' if bidir else ''}{T} steps), re-run with the "
                          f"same weights and checked equal to torch's output")
        return out

    # -- the graph -----------------------------------------------------------------------------
    def graph(self, output: Any = None, edge_grads: bool = True) -> Graph:
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
            ``version`` (torch's), ``schema``, ``output``, ``loss`` and ``notes``.

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
            self._infer_steps(keep)
            self._infer_names(keep, out)
            labels = self._param_labels(keep)
            return self._export(keep, out, grads, labels)
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
                node.shape, node.dtype = list(val.shape), _dtype(val)
                node.requires_grad = (val.is_floating_point() or val.is_complex()) and any(
                    N[j].requires_grad for j in node.inputs)

    def _check(self, node: _Node, val: Any) -> None:
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
            if text.startswith(node.check) and "re-run" in text and "difference" not in text:
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
        self.edge_grads: dict[tuple[int, int], Any] = {}
        kept = set(keep)
        for n in reversed(keep):
            node = N[n]
            g = grads.get(n)
            if g is None or node.fn is None or not node.inputs:
                continue
            need = [N[j].requires_grad for j in node.inputs]
            if not any(need) or not (edge_grads or any(not N[j].real for j in node.inputs)):
                continue
            parts = _vjp(node.fn, [N[j].value for j in node.inputs], need, g)
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

    # -- inference of steps and names ----------------------------------------------------------
    def _consumers(self, keep: list[int]) -> dict[int, list[int]]:
        cons: dict[int, list[int]] = {}
        for n in keep:
            for j in dict.fromkeys(self.nodes[n].inputs):
                cons.setdefault(j, []).append(n)
        return cons

    def _infer_steps(self, keep: list[int]) -> None:
        N = self.nodes
        cons = self._consumers(keep)
        if not self._explicit:
            mixed: set[int] = set()
            for n in keep:  # forward: an op reading one step belongs to it
                node = N[n]
                if node.fixed or node.kind != "op":
                    continue
                steps = {N[j].step for j in node.inputs if N[j].step is not None}
                if len(steps) > 1 or any(j in mixed for j in node.inputs):
                    mixed.add(n)  # a sum over time, or what follows it: outside the steps
                    node.step = None
                elif steps:
                    node.step = steps.pop()
            for n in reversed(keep):  # backward: a step-free value used at one step only
                node = N[n]
                if node.fixed or node.kind != "op" or node.step is not None or n in mixed:
                    continue
                if any(N[j].step is not None for j in node.inputs):
                    continue
                steps = {N[c].step for c in cons.get(n, ())}
                if len(steps) == 1 and None not in steps:
                    node.step = steps.pop()
        for n in keep:  # a leaf is tagged with the step that first reads it
            node = N[n]
            if node.op == "leaf" and node.kind != "param" and not node.fixed:
                first = cons.get(n)
                node.step = N[first[0]].step if first else node.step

    def _infer_names(self, keep: list[int], out: int) -> None:
        N = self.nodes
        cons = self._consumers(keep)
        for n in keep:
            node = N[n]
            if node.op in _LOSSES:
                node.name = node.name or "L"
                ins = node.inputs
                if ins and N[ins[0]].name is None and N[ins[0]].kind == "op":
                    N[ins[0]].name = "o"
                if len(ins) > 1 and N[ins[1]].name is None and N[ins[1]].op == "leaf":
                    N[ins[1]].name = "y"
        if N[out].name is None and N[out].shape == [] and N[out].kind == "op":
            N[out].name = "L"
        # a loop written by hand: the value a step hands to a later step is its state h
        last: dict[tuple, int] = {}
        for n in keep:
            node = N[n]
            if (node.kind == "op" and node.name is None and node.step is not None
                    and node.shape and any(N[c].step is not None and N[c].step != node.step
                                           for c in cons.get(n, ()))):
                last[(node.scope, node.step)] = n
        state_uses = set()
        for n in last.values():
            N[n].name = "h"
        if last:  # the last step's h hands nothing on: it is found by its place in the step
            keys = _step_keys(N, keep)
            hkeys = {keys[n] for n in last.values()}
            for n in keep:
                if N[n].name is None and N[n].kind == "op" and keys.get(n) in hkeys:
                    N[n].name = "h"
        pexpr = self._param_exprs(keep)
        for n in keep:
            if N[n].name in _STATES and N[n].kind == "op":
                for c in cons.get(n, ()):
                    if N[c].step is not None and N[c].step != N[n].step:
                        state_uses.add(_use(N, c, n, pexpr))
        for n in keep:
            node = N[n]
            if node.op != "leaf" or node.kind == "param" or node.name is not None:
                continue
            first = cons.get(n, [])
            if not first:
                continue
            c = first[0]
            if _use(N, c, n, pexpr) in state_uses and N[c].step is not None:
                node.name, node.step = "h", N[c].step - 1  # the initial state h(0)
            elif (node.step is not None and N[c].name != "x"   # ids into an embedding x(t)
                  and any(j in pexpr for j in N[c].inputs)):
                node.name = "x"

    def _param_exprs(self, keep: list[int]) -> dict[int, tuple]:
        """Parameters and values made from parameters alone (W.T) -> the parameters' keys."""
        N = self.nodes
        found: dict[int, tuple] = {}
        for n in keep:
            node = N[n]
            if node.kind == "param":
                found[n] = (node.key or f"param{n}",)
            elif node.kind == "op" and node.inputs and all(j in found for j in node.inputs):
                found[n] = tuple(dict.fromkeys(k for j in node.inputs for k in found[j]))
        return found

    def _param_labels(self, keep: list[int]) -> dict[int, str]:
        """Parameter node -> its label: the caller's name, the book's letter, or a short label."""
        N = self.nodes
        labels: dict[int, str] = {}
        roles = _Roles(N, keep)
        by_module: dict[str, dict] = {}
        for n in keep:
            node = N[n]
            if node.kind != "param":
                continue
            key = node.key or f"param{n}"
            attr = key.rpartition(".")[2]
            mod = key.rpartition(".")[0]
            if not _GENERIC.match(attr) or key in self._explicit_names:
                labels[n] = attr  # the name its author gave (U, W, b or a mapping key)
                continue
            m = _RNN_PARAM.match(attr)
            if m:
                kind, which, layer, _ = m.groups()
                labels[n] = _LETTER[(kind, which)] + (str(int(layer) + 1) if layer and
                                                      int(layer) else "")
                continue
            by_module.setdefault(mod, {})[attr] = n
        taken: dict[tuple, list] = {}
        for mod, params in by_module.items():
            w = params.get("weight")
            letters = None
            if w is not None and len(params) <= 2:
                role = roles.of(w)
                if role is not None:
                    letters = {"V": ("V", "c"), "U": ("U", "b"), "W": ("W", "b"),
                               "E": ("E", "b")}[role]
            short = mod.rpartition(".")[2] or mod
            for attr, n in params.items():
                if letters and attr in ("weight", "bias"):
                    label = letters[0] if attr == "weight" else letters[1]
                    taken.setdefault((N[n].scope, label), []).append(n)
                tail = {"weight": "W", "bias": "b"}.get(attr, attr)
                labels[n] = f"{short}.{tail}" if short else tail
        for (sc, label), ns in taken.items():
            mods = {N[n].key.rpartition(".")[0] for n in ns}
            if len(mods) == 1 and len(ns) <= 2:  # one module has the role: it gets the letter
                for n in ns:
                    labels[n] = label
        return labels

    def _export(self, keep: list[int], out: int, grads: dict, labels: dict) -> Graph:
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
                "requires_grad": bool(node.requires_grad), "src": node.src,
                "value_norm": _norm(node.value), "grad_norm": _norm(g)})
            seen: dict[int, list] = {}
            for pos, j in enumerate(node.inputs):
                seen.setdefault(j, []).append(pos)
            for j, args in seen.items():
                edges.append({"source": new_id[j], "target": k, "arg": args[0], "args": args,
                              "grad_norm": _norm(self.edge_grads.get((j, i)))})
        o = new_id[out]
        attrs = {"engine": "torch", "version": torch.__version__, "schema": SCHEMA_VERSION,
                 "output": o, "loss": o if nodes[o]["shape"] == [] or
                 math.prod(nodes[o]["shape"]) == 1 else None,
                 "adapter": f"tinygraph.adapters.torch {tinygraph.__version__}",
                 "notes": list(self.notes)}
        self._graph = Graph(nodes, edges, attrs)
        return self._graph

    _src: str | None = None


class _Roles:
    """The role of a generic weight in the recurrence, read from the named tensors around the
    ops that read it: x -> h is U, h(t-1) -> h(t) is W, h -> o / L is V."""

    def __init__(self, N: list, keep: list[int]) -> None:
        self.N = N
        self.cons: dict[int, list[int]] = {}
        for n in keep:
            for j in dict.fromkeys(N[n].inputs):
                self.cons.setdefault(j, []).append(n)

    def _sources(self, n: int) -> set[int]:
        N, found, todo, seen = self.N, set(), [n], {n}
        while todo:
            m = todo.pop()
            for j in N[m].inputs:
                if j in seen or N[j].kind == "param":
                    continue
                seen.add(j)
                (found.add if N[j].name else todo.append)(j)
        return found

    def _targets(self, n: int) -> set[int]:
        N, found, todo, seen = self.N, set(), [n], {n}
        while todo:
            m = todo.pop()
            if N[m].name and m != n:
                found.add(m)
                continue
            for c in self.cons.get(m, ()):
                if c not in seen:
                    seen.add(c)
                    todo.append(c)
        if N[n].name:
            found.add(n)
        return found

    def of(self, p: int) -> str | None:
        N = self.N
        roles = set()
        for r in self.cons.get(p, [])[:16]:  # the first steps tell; the rest repeat them
            if N[r].op == "embedding":
                roles.add("E")
                continue
            src = [N[j] for j in self._sources(r)]
            dst = [N[j] for j in self._targets(r)]
            if not src or not dst:
                return None
            to_state = any(d.name in _STATES for d in dst)
            if to_state and all(s.name in _STATES and s.step is not None and any(
                    d.step is not None and d.step != s.step for d in dst) for s in src):
                roles.add("W")
            elif to_state and all(s.name == "x" for s in src):
                roles.add("U")
            elif not to_state and all(s.name in _STATES for s in src):
                roles.add("V")
            else:
                return None
        return roles.pop() if len(roles) == 1 else None


def _step_keys(N: list, keep: list[int]) -> dict[int, tuple]:
    """Each tagged op's place in its step: (scope, op, parameters read, how many such before it
    in the step), the same at every step for a loop (as viz folds it)."""
    count: dict[tuple, int] = {}
    keys: dict[int, tuple] = {}
    for n in keep:
        node = N[n]
        if node.kind != "op" or node.step is None:
            continue
        base = (node.scope, node.op, tuple(N[j].key for j in node.inputs
                                           if N[j].kind == "param"))
        k = count.get((node.step,) + base, 0)
        count[(node.step,) + base] = k + 1
        keys[n] = base + (k,)
    return keys


def _use(N: list, c: int, n: int, pexpr: dict) -> tuple:
    """How op `c` reads `n`: its scope, op, argument position and the parameters beside it
    (read directly or through W.T), so h(t-1) @ W.T and x(t) @ U.T are told apart."""
    node = N[c]
    pos = node.inputs.index(n)
    beside = sorted({k for j in node.inputs if j != n for k in pexpr.get(j, ())})
    return (node.scope, node.op, pos, tuple(beside))


def _grad_hook(ref: Any, n: int) -> Callable:
    def hook(g: Any) -> None:
        rec = ref()
        if rec is not None:
            rec._on_grad(n, g)
        return None  # observe only: torch's gradient goes on unchanged
    return hook


def _vjp(fn: Callable, vals: list, need: list, g: Any) -> list:
    """The gradient op `fn` sends to each input for output gradient `g` (None: none)."""
    ins = [v.detach().requires_grad_(True) if want and (v.is_floating_point() or v.is_complex())
           else v.detach() for v, want in zip(vals, need)]
    with torch.enable_grad():
        out = fn(*ins)
    wanted = [a for a in ins if a.requires_grad]
    if not isinstance(out, torch.Tensor) or not out.requires_grad or not wanted:
        return [None] * len(ins)
    got = iter(torch.autograd.grad(out, wanted, g, allow_unused=True))
    return [next(got) if a.requires_grad else None for a in ins]


def _norm(t: Any) -> float | None:
    if t is None or not isinstance(t, torch.Tensor) or not (t.is_floating_point()
                                                              or t.is_complex()):
        return None
    return float(torch.linalg.vector_norm(t.detach().double()))


def _is_cell(module: Any) -> bool:
    return isinstance(module, torch.nn.RNNCellBase) or type(module).__name__.endswith("Cell")


def _chunk(parts: int, k: int) -> Callable:
    return lambda a: a.chunk(parts, 1)[k]


def _select(axis: int, t: int) -> Callable:
    return lambda a: a.select(axis, t)


def _const(value: Any) -> Callable:
    value = value.detach()
    return lambda: value


def _stack(axis: int) -> Callable:
    return lambda *xs: torch.stack(xs, axis)


def _cat(a: Any, b: Any) -> Any:
    return torch.cat([a, b], -1)


def _iter_nodes(rec: Recording) -> Iterator[_Node]:  # pragma: no cover - debugging aid
    return iter(rec.nodes)
