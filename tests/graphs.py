"""Hand-built graphs in the tinygraph export schema, for the viz tests.

They mimic what the engine records for the architectures of the seed (ch. 10): one node per op in
tape order, `scope`/`step` tags, names x h g o yhat y L C s a, parameters U W V b c R. Optional
synthetic gradient norms decay geometrically back through time, so overlays and `diagnose` have
something to find. Every factory takes the sequence length T, so folding can be checked for
T = 3 against T = 300.
"""
from __future__ import annotations

import math

import networkx as nx


class Builder:
    """Append nodes in tape order, like the engine does; ids are tape indices."""

    def __init__(self) -> None:
        self.G = nx.DiGraph(engine="tinygraph-fixture", version="0", schema=1, names={})
        self.scope = ""
        self.step: int | None = None
        self.params: dict[tuple[str, str], int] = {}

    def _add(self, op, kind, inputs=(), name=None, param=None, shape=(4,)):
        n = self.G.number_of_nodes()
        self.G.add_node(n, op=op, kind=kind, name=name, shape=list(shape), dtype="float64",
                        scope=self.scope, step=self.step, param=param,
                        requires_grad=kind != "input", src=None, value_norm=1.0, grad_norm=None)
        for i, u in enumerate(inputs):
            if self.G.has_edge(u, n):
                self.G.edges[u, n]["args"].append(i)
            else:
                self.G.add_edge(u, n, arg=i, args=[i], grad_norm=None)
        return n

    def param(self, name, shape=(4, 4)):
        key = (self.scope, name)
        if key not in self.params:
            self.params[key] = self._add("leaf", "param", name=name, shape=shape)
        return self.params[key]

    def input(self, name=None, kind="input", shape=(4,)):
        return self._add("leaf", kind, name=name, shape=shape)

    def op(self, op, *inputs, name=None, shape=(4,)):
        ps = [self.G.nodes[i]["name"] for i in inputs if self.G.nodes[i]["kind"] == "param"]
        return self._add(op, "op", inputs, name=name, param=",".join(ps) or None, shape=shape)

    # the usual blocks -------------------------------------------------------------------
    def affine(self, terms, bias="b", name=None, act="tanh"):
        """act(sum_i P_i @ v_i + bias); ``terms`` is a list of (param name, node)."""
        acc = None
        for pname, v in terms:
            m = self.op("matmul", self.param(pname), v)
            acc = m if acc is None else self.op("add", acc, m)
        if bias:
            acc = self.op("add", acc, self.param(bias, shape=(4,)))
        return self.op(act, acc, name=name) if act else _rename(self.G, acc, name)

    def output_and_loss(self, h, V="V", c="c"):
        o = self.affine([(V, h)], bias=c, name="o", act=None)
        self.op("softmax", o, name="yhat")
        y = self.input("y", shape=())
        return self.op("cross_entropy", o, y, name="L", shape=())

    def total_loss(self, losses):
        self.scope, self.step = "", None
        s = self.op("stack", *losses, shape=(len(losses),))
        out = self.op("sum", s, name="L", shape=())
        self.G.graph["output"] = self.G.graph["loss"] = out
        return out


def _rename(G, n, name):
    if name is not None:
        G.nodes[n]["name"] = name
    return n


def _steps(b, T, scope):
    for t in range(1, T + 1):
        b.scope, b.step = scope, t
        yield t


# architectures -------------------------------------------------------------------------
def elman(T=3, grads=False, detach_every=None):
    """Fig. 10.3: h(t) = tanh(W h(t-1) + U x(t) + b), o = V h + c, L(t) per step."""
    b = Builder()
    h, losses = None, []
    for t in _steps(b, T, "rnn"):
        if h is None:
            h = b.input(None, kind="const")  # h(0) = 0, unnamed
        elif detach_every and (t - 1) % detach_every == 0:
            h = b.op("detach", h)
        x = b.input("x")
        h = b.affine([("W", h), ("U", x)], name="h")
        losses.append(b.output_and_loss(h))
    b.total_loss(losses)
    return with_grads(b.G) if grads else b.G


def jordan(T=3, teacher_forcing=False, grads=False):
    """Fig. 10.4/10.6: recurrence from the output o(t-1) (or the target y(t-1)) into h(t)."""
    b = Builder()
    prev, losses = None, []
    for t in _steps(b, T, "rnn"):
        x = b.input("x")
        terms = [("U", x)] + ([("W", prev)] if prev is not None else [])
        h = b.affine(terms, name="h")
        o = b.affine([("V", h)], bias="c", name="o", act=None)
        y = b.input("y", shape=())
        losses.append(b.op("cross_entropy", o, y, name="L", shape=()))
        prev = y if teacher_forcing else o
    b.total_loss(losses)
    return with_grads(b.G) if grads else b.G


def single_output(T=3, grads=False):
    """Fig. 10.5: read the whole sequence, one output and loss at the end."""
    b = Builder()
    h = None
    for t in _steps(b, T, "rnn"):
        h = b.input(None, kind="const") if h is None else h
        h = b.affine([("W", h), ("U", b.input("x"))], name="h")
    b.scope = "head"
    loss = b.output_and_loss(h)
    b.step = None
    b.G.graph["output"] = b.G.graph["loss"] = loss
    return with_grads(b.G) if grads else b.G


def bidirectional(T=3, grads=False):
    """Fig. 10.11: h runs forward, g runs backward, o(t) reads both."""
    b = Builder()
    xs = []
    for t in _steps(b, T, "birnn"):
        xs.append(b.input("x"))
    hs, h = [], None
    for t in _steps(b, T, "birnn/fwd"):
        h = b.input(None, kind="const") if h is None else h
        h = b.affine([("W", h), ("U", xs[t - 1])], name="h")
        hs.append(h)
    gs, g = [None] * T, None
    for t in range(T, 0, -1):
        b.scope, b.step = "birnn/bwd", t
        g = b.input(None, kind="const") if g is None else g
        g = b.affine([("W", g), ("U", xs[t - 1])], name="g")
        gs[t - 1] = g
    losses = []
    for t in _steps(b, T, "birnn"):
        o = b.affine([("V", hs[t - 1]), ("Vg", gs[t - 1])], bias="c", name="o", act=None)
        y = b.input("y", shape=())
        losses.append(b.op("cross_entropy", o, y, name="L", shape=()))
    b.total_loss(losses)
    return with_grads(b.G) if grads else b.G


def seq2seq(T=3, T_out=None, grads=False, context_step=False):
    """Fig. 10.12: encoder over x(1..T) -> context C -> decoder over y(1..T_out).

    `context_step`: tag C with the encoder's last step T, in a scope of its own (as
    `tinygraph.nn.Encoder` records it) instead of no step.
    """
    T_out = T if T_out is None else T_out
    b = Builder()
    h = None
    for t in _steps(b, T, "encoder"):
        h = b.input(None, kind="const") if h is None else h
        h = b.affine([("W", h), ("U", b.input("x"))], name="h")
    b.step = T if context_step else None
    if context_step:
        b.scope = "encoder_out"
    C = b.affine([("Wc", h)], bias=None, name="C")
    s, losses, y_prev = None, [], None
    for t in _steps(b, T_out, "decoder"):
        terms = [("Q", C)] + ([("W", s)] if s is not None else [])
        terms += [("R", y_prev)] if y_prev is not None else []
        s = b.affine(terms, name="h")
        o = b.affine([("V", s)], bias="c", name="o", act=None)
        y_prev = b.input("y", shape=())
        losses.append(b.op("cross_entropy", o, y_prev, name="L", shape=()))
    b.total_loss(losses)
    return with_grads(b.G) if grads else b.G


def deep(T=3, form="stacked", grads=False):
    """Fig. 10.13: (a) stacked hidden layers, (b) an MLP in the transition, (c) with a skip."""
    if form not in ("stacked", "transition", "skip"):
        raise ValueError(form)
    b = Builder()
    h1 = h2 = None
    losses = []
    for t in range(1, T + 1):
        b.step = t
        b.scope = "deep"
        x = b.input("x")
        if form == "stacked":
            b.scope = "deep/layer1"
            h1 = b.input(None, kind="const") if h1 is None else h1
            h1 = b.affine([("W", h1), ("U", x)], name="h")
            b.scope = "deep/layer2"
            h2 = b.input(None, kind="const") if h2 is None else h2
            h2 = b.affine([("W", h2), ("U", h1)], name="h")
            top = h2
        else:
            b.scope = "deep/cell"
            h1 = b.input(None, kind="const") if h1 is None else h1
            a = b.affine([("W1", h1), ("U", x)], name="a")
            terms = [("W2", a)] + ([("Ws", h1)] if form == "skip" else [])
            h1 = b.affine(terms, bias="b2", name="h")
            top = h1
        b.scope = "deep"
        losses.append(b.output_and_loss(top))
    b.total_loss(losses)
    return with_grads(b.G) if grads else b.G


def tree(n_leaves=4, grads=False):
    """Fig. 10.14: a recursive net; one composition h = tanh(W [l; r] + b) per internal node.

    The composition at internal node k is tagged ``step=k``; the leaves belong to no step.
    """
    b = Builder()
    b.scope = "tree/leaf"
    level = [b.input("x") for _ in range(n_leaves)]
    k = 0
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level) - 1, 2):
            k += 1
            b.scope, b.step = "tree/compose", k
            cat = b.op("concat", level[i], level[i + 1], shape=(8,))
            nxt.append(b.affine([("W", cat)], name="h"))
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    b.scope, b.step = "tree", None
    loss = b.output_and_loss(level[0])
    b.G.graph["output"] = b.G.graph["loss"] = loss
    return with_grads(b.G) if grads else b.G


def dynamical(T=3, grads=False):
    """Fig. 10.1: s(t) = f(s(t-1); theta), no input; a loss on the final state."""
    b = Builder()
    s = None
    for t in _steps(b, T, "system"):
        s = b.input("s", kind="input") if s is None else s
        s = b.affine([("W", s)], name="s")
    b.scope, b.step = "", None
    loss = b.op("sum", s, name="L", shape=())
    b.G.graph["output"] = b.G.graph["loss"] = loss
    return with_grads(b.G) if grads else b.G


ARCHITECTURES = {
    "elman": elman, "jordan": jordan,
    "teacher_forcing": lambda T=3, grads=False: jordan(T, teacher_forcing=True, grads=grads),
    "single_output": single_output, "bidirectional": bidirectional, "seq2seq": seq2seq,
    "deep_stacked": lambda T=3, grads=False: deep(T, "stacked", grads),
    "deep_transition": lambda T=3, grads=False: deep(T, "transition", grads),
    "deep_skip": lambda T=3, grads=False: deep(T, "skip", grads),
    "tree": lambda T=3, grads=False: tree(max(2, T), grads),
    "dynamical": dynamical,
}


def with_grads(G, decay=0.5, nan_at=None):
    """Synthetic gradient norms: |dL/dn| = decay ** (distance back from the loss, in steps).

    ``nan_at`` (a node id) makes that node and everything upstream of it NaN, as a real NaN
    would propagate backward.
    """
    steps = [d["step"] for _, d in G.nodes(data=True) if d["step"] is not None]
    last = max(steps) if steps else 0
    for n, d in G.nodes(data=True):
        back = last - d["step"] if d["step"] is not None else 0
        d["grad_norm"] = decay ** back if d["requires_grad"] else None
    if nan_at is not None:
        for n in nx.ancestors(G, nan_at) | {nan_at}:
            G.nodes[n]["grad_norm"] = math.nan
    for u, v, d in G.edges(data=True):
        d["grad_norm"] = G.nodes[v]["grad_norm"] if G.nodes[u]["requires_grad"] else None
    return G
