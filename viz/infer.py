"""Inference: recover the time steps and names of a plain loop recorded without annotations.

Flow: viz.schema.normalise -> **viz.infer** -> (the normalised graph every view reads).

``for t in range(T): h = tg.tanh(W @ h + U @ x[t])`` written without ``tg.step()`` and
``.named()`` still records its loop: the body's ops come back in tape order, iteration after
iteration, reading the same parameters (from the same source lines). This module writes what
the annotations would have written, so the views draw the annotated loop's pictures:

1. **Iterations** (`_find_loop`): ops get a *token* (scope, op, parameters, source line); the
   first-seen parameter-reading token of the most common repeat count T opens each iteration;
   the last ends where the ops stop matching the one before. The cut must hold: each such
   token once per iteration, the middle iterations alike, each carried value carried over one
   distance into every iteration (a tree recursed over is no sequence).
2. **Steps** (`_tag_steps`): ops take their iteration; a slice ``x[t]`` the step that reads
   it; a scalar running sum (``total = total + L``) stays outside the steps; leaves take their
   first reader's step, and a leaf read only where later steps read a carried value is h(0).
3. **Names** (`_name`): from the source line (node attribute ``code``, else the ``src`` file
   through linecache) the value an assignment stores (``h = ...``) and the variable an input is
   sliced from (``U @ x[t]`` -> x); without it, by role (L, o, yhat, h, x, y) with a note.

When the repetition cannot be cut into steps, nothing is tagged and the graph attribute
``inference_note`` says so in one line and names the fix. Graphs with step tags are left
alone. Iterative and linear: each source line is parsed once, however many steps run it.
"""
from __future__ import annotations

import ast
import linecache
from collections import Counter
from typing import Any

import networkx as nx

LOSS_OPS = frozenset({"cross_entropy", "mse_loss", "nll_loss"})
ACTIVATIONS = frozenset({"tanh", "sigmoid", "relu"})
SOFTMAX = frozenset({"softmax", "log_softmax"})
NOTE_GUESSED = ("time steps inferred from the repeated loop body; names guessed from the ops "
                "(record with tg.recording(source=True), or use tg.step(t) and .named('h'))")
NOTE_UNDECIDED = ("this graph repeats but viz could not tell its time steps apart: "
                  "wrap each step in `with tg.step(t):` and name tensors with .named('h')")
NOTE_PARTLY = ("only the first loop's time steps were inferred: tag the other loops with "
               "tg.step(t) (and tg.scope) and name their tensors with .named('h')")

#: Python operators -> the op they record (for matching a source line's operands)
_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div",
           ast.MatMult: "matmul", ast.Pow: "pow"}


def infer(G: nx.DiGraph, order: list | None = None) -> nx.DiGraph:
    """Tag the steps and names of a plain loop recorded without ``tg.step`` / ``.named``.

    Parameters
    ----------
    G : networkx.DiGraph
        A graph in the schema with every node attribute present (what
        :func:`viz.schema.normalise` builds); changed in place.
    order : list, optional
        The nodes in tape (topological) order; sorted node ids when omitted.

    Returns
    -------
    networkx.DiGraph
        ``G``. When a loop was found: ``step`` on its nodes, names where the user gave none,
        graph attributes ``inferred`` (``{"steps": T, "names": "source" | "ops" | "user"}``)
        and, when something was guessed or could not be decided, ``inference_note`` (one line
        saying what and naming the fix). A graph with step tags is returned unchanged.

    Examples
    --------
    >>> G = viz.load(tg.trace(total).to_networkx())   # doctest: +SKIP
    >>> G.graph["inferred"]                            # doctest: +SKIP
    {'steps': 30, 'names': 'source'}
    """
    if any(d["kind"] == "op" and d["step"] is not None for _, d in G.nodes(data=True)):
        return G  # annotated (or partly): the user's tags are the truth
    if order is None:
        order = sorted(G) if all(type(n) is int for n in G) else list(nx.topological_sort(G))
    rec = _Rec(G, order)
    found = _find_loop(rec)
    if found is None:
        return G
    if found == "undecided":  # parameters read again and again, but not as one loop body
        G.graph["inference_note"] = NOTE_UNDECIDED
        return G
    T, partial = found
    before = {n: d["step"] for n, d in rec.a.items()}
    if not _tag_steps(rec):  # the iterations do not feed each other like time steps
        for n, d in rec.a.items():
            d["step"] = before[n]
        G.graph["inference_note"] = NOTE_UNDECIDED
        return G
    user_named = any(d["name"] for d in rec.a.values() if d["kind"] != "param")
    how = "user" if user_named else _name(rec)
    G.graph["inferred"] = {"steps": T, "names": how}
    notes = [NOTE_GUESSED] * (how == "ops") + [NOTE_PARTLY] * partial
    if notes:
        G.graph["inference_note"] = "; ".join(notes)
    return G


class _Rec:
    """The recording as plain dicts and lists (networkx views cost a call per lookup), and
    what inference learns about it."""

    def __init__(self, G: nx.DiGraph, order: list) -> None:
        self.order = order
        self.a: dict[Any, dict] = dict(G.nodes(data=True))  # the graph's own attribute dicts
        self.out: dict[Any, list] = {n: [] for n in order}  # n -> [(consumer, edge data)]
        self.inn: dict[Any, list] = {n: [] for n in order}  # n -> [(input, edge data)]
        for u, v, e in G.edges(data=True):
            self.out[u].append((v, e))
            self.inn[v].append((u, e))
        self.pos = {n: i for i, n in enumerate(order)}
        self.ops = [n for n in order if self.a[n]["kind"] == "op"]
        self.token = {n: _token(self.a[n]) for n in self.ops}
        self.window: dict[Any, int] = {}   # op node -> its iteration 1..T
        self.role: dict[Any, tuple] = {}   # op node in an iteration -> (token, rank in it)
        self.accum: set = set()            # op nodes of accumulations (total = total + L)
        self.carried: dict[Any, tuple] = {}  # nodes read by a later iteration -> role
        self.initial: set = set()           # leaves that start a carried value: h(0)
        self.texts: dict[str, ast.stmt | None] = {}  # source line -> its parsed statement
        self.operands: dict[tuple, str | None] = {}  # (line, op, arg, params) -> variable


# -- 1. iterations ---------------------------------------------------------------------------
def _token(d: dict) -> tuple:
    return (d["scope"], d["op"], d["param"] or "", d["src"] or d.get("code") or "")


def _find_loop(rec: _Rec) -> tuple[int, bool] | str | None:
    """Cut the tape into iterations (``rec.window``, ``rec.role``): (T, other loops left
    over); None when nothing repeats, ``"undecided"`` when the repetition is not one loop."""
    ops, tokens = rec.ops, rec.token
    count = Counter(tokens.values())
    # a loop reads the same parameters iteration after iteration; repeated ops that read none
    # (the relu of each layer of a feed-forward net) are no loop
    counts = Counter(c for tok, c in count.items() if c >= 2 and tok[2])
    if not counts:
        return None
    T = max(counts, key=lambda c: (counts[c], c))
    where: dict[tuple, list[int]] = {}
    for i, n in enumerate(ops):
        if count[tokens[n]] == T:
            where.setdefault(tokens[n], []).append(i)
    anchors = [p for tok, p in where.items() if tok[2]]
    starts = min(anchors, key=lambda p: p[0])  # iteration k opens at its k-th occurrence
    end = len(ops)
    if T >= 2:  # the last iteration ends where the ops stop matching the one before it
        before = Counter(tokens[n] for n in ops[starts[-2]:starts[-1]])
        end = starts[-1]
        while end < len(ops) and before[tokens[ops[end]]] > 0:
            before[tokens[ops[end]]] -= 1
            end += 1
    bounds = list(starts) + [end]
    window = rec.window
    for k in range(T):
        for n in ops[bounds[k]:bounds[k + 1]]:
            window[n] = k + 1
    # ops repeating outside the iterations belong to another loop (a decoder after its
    # encoder, the backward half of a bidirectional net): left untagged, and said so
    rest = Counter(tokens[n] for n in ops if n not in window)
    partial = any(c >= 2 for c in rest.values())
    # a loop body runs the same ops every time: each repeated parameter read once per
    # iteration, and the iterations between the first and the last alike (an inner loop of
    # varying length, or branches taken at some steps, cannot be cut into steps this way)
    every = list(range(1, T + 1))
    for tok, p in where.items():
        if tok[2] and tok not in rest and sorted({window[ops[i]] for i in p}) != every:
            window.clear()
            return "undecided"
    bodies: dict[int, Counter] = {}
    for n, k in window.items():
        if 1 < k < T:
            bodies.setdefault(k, Counter())[tokens[n]] += 1
    if any(b != bodies[2] for b in bodies.values()):
        window.clear()
        return "undecided"
    _set_roles(rec)
    return T, partial


def _set_roles(rec: _Rec) -> None:
    """Role of each op in an iteration: (token, rank among its iteration's ops of that token),
    the same at every iteration."""
    seen: Counter = Counter()
    rec.role.clear()
    for n in rec.ops:
        k = rec.window.get(n)
        if k is not None:
            rank = seen[k, rec.token[n]]
            seen[k, rec.token[n]] = rank + 1
            rec.role[n] = (rec.token[n], rank)


# -- 2. steps --------------------------------------------------------------------------------
def _tag_steps(rec: _Rec) -> bool:
    """Write ``step`` from the iterations; False when the values carried from iteration to
    iteration do not keep one lag per role (a tree recursed over, not a sequence)."""
    a, window, role = rec.a, rec.window, rec.role
    rec.accum = accum = _accumulators(rec)
    for n, k in window.items():
        if n not in accum:
            a[n]["step"] = k
    # ops computed from untagged values only join the step of their first consumer (x[t]
    # sliced at the end of the iteration before); reverse order settles chains of them
    looping = set(rec.token[n] for n in window)
    for n in reversed(rec.ops):
        if n in accum or any(a[p]["step"] is not None for p, _ in rec.inn[n]):
            continue
        if n not in window and rec.token[n] not in looping:
            continue  # computed before the loop (an initial state made by ops)
        a[n]["step"] = _first_reader(rec, n)
        if a[n]["step"] is not None:
            window[n] = a[n]["step"]  # it belongs to the iteration that reads it
    _set_roles(rec)
    role = rec.role
    for u in rec.ops:
        if u in window and u not in accum and any(
                window.get(v, 0) > window[u] for v, _ in rec.out[u]):
            rec.carried[u] = role[u]
    # a sequence carries its state into every next iteration, with one lag per role (a tree
    # recursed over feeds its root from iterations at different distances, and its first
    # compositions from none)
    lag: dict[tuple, int] = {}
    fed = set()
    for u in rec.carried:
        for v, e in rec.out[u]:
            if v in role and lag.setdefault((role[u], role[v], e["arg"]),
                                            window[v] - window[u]) != window[v] - window[u]:
                return False
            if window.get(v, 0) > window[u]:
                fed.add(window[v])
    if rec.carried and len(fed) < max(window.values()) - 1:
        return False
    # leaves: the step that reads them. A leaf read where later steps read a value carried
    # from the step before (an op's, or a leaf's: y(t-1) under teacher forcing) and nowhere
    # else is the initial state h(0): the step before its reader, as tinygraph.nn tags it
    leaves = [n for n in rec.order if a[n]["kind"] in ("input", "const")]
    for n in leaves:
        a[n]["step"] = _first_reader(rec, n)
    carried_slots = {(role[v], k) for u in rec.carried for v, e in rec.out[u]
                     if window.get(v, 0) > window[u] for k in _slots(e)}
    for n in leaves:  # read at its step and, in another place, at a later one: carried
        s = a[n]["step"]  # (a whole sequence read in one place at every step is not)
        later = [(v, e) for v, e in rec.out[n] if s is not None and window.get(v, 0) > s]
        if later and len({(role.get(v), k) for v, e in rec.out[n] for k in _slots(e)}) > 1:
            rec.carried[n] = None
            carried_slots.update((role[v], k) for v, e in later for k in _slots(e))
    for n in leaves:
        if a[n]["step"] is not None and all((role.get(v), k) in carried_slots
                                            for v, e in rec.out[n] for k in _slots(e)):
            a[n]["step"] -= 1
            rec.initial.add(n)
    return True


def _slots(e: dict) -> list[int]:
    return e["args"] or [e["arg"]]


def _first_reader(rec: _Rec, n: Any) -> int | None:
    steps = [rec.a[c]["step"] for c, _ in rec.out[n] if rec.a[c]["step"] is not None]
    return min(steps) if steps else None


def _accumulators(rec: _Rec) -> set:
    """Ops of scalar sums carried across iterations and read by nothing else in the loop
    (``total = total + L``): accumulations outside the steps, as with ``tg.step``."""
    members: dict[tuple, list] = {}
    for n, r in rec.role.items():
        members.setdefault(r, []).append(n)
    found = set()
    for r, ns in members.items():
        d = rec.a[ns[0]]
        if d["op"] != "add" or d["param"] or d["shape"] not in ([], (), None) or len(ns) < 2:
            continue
        same = set(ns)
        reads = [c for n in ns for c, _ in rec.out[n]]
        if all(c in same or c not in rec.window for c in reads) and \
                sum(c in same for c in reads) >= len(ns) - 1:
            found.update(ns)
    return found


# -- 3. names --------------------------------------------------------------------------------
def _name(rec: _Rec) -> str:
    """Name the loop's values: from the source when it can be read, else from the ops."""
    named = _names_from_source(rec)
    if not named:
        _names_from_ops(rec)
    for n in rec.accum:  # a running sum is named once, where it leaves the loop, so the
        if any(c in rec.accum for c, _ in rec.out[n]):  # variable level draws one total
            rec.a[n]["name"] = None  # with an edge from each L(t)
    _name_leaves(rec, use_source=named)
    return "source" if named else "ops"


def source_text(d: dict) -> str | None:
    """The source line a node was made by: its ``code`` attribute, else the line its ``src``
    (``file.py:line``, relative to the working directory) points to, when that file is found."""
    code = d.get("code")
    if isinstance(code, str) and code.strip():
        return code.strip()
    src = d.get("src")
    if not isinstance(src, str):
        return None
    path, _, line = src.rpartition(":")
    if not path or not line.isdigit():
        return None
    # linecache also looks the name up along sys.path (a script's own directory comes first),
    # so a file recorded by its base name is found when it is importable from here
    return linecache.getline(path, int(line)).strip() or None


def _statement(d: dict, texts: dict) -> ast.stmt | None:
    key = d.get("code") or d.get("src")
    if not key:
        return None
    if key not in texts:
        texts[key] = None
        try:
            body = ast.parse(source_text(d) or "").body
            texts[key] = body[0] if len(body) == 1 else None
        except SyntaxError:  # part of a statement spread over several lines
            pass
    return texts[key]


def _target(stmt: ast.stmt | None) -> str | None:
    """The variable an assignment stores to (``h = ...``, ``total += ...``, ``self.h = ...``)."""
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        return _name_of(stmt.targets[0])
    return _name_of(stmt.target) if isinstance(stmt, (ast.AugAssign, ast.AnnAssign)) else None


def _line(d: dict) -> str | None:
    return d.get("code") or d["src"]


def _names_from_source(rec: _Rec) -> bool:
    """Name the value each assignment line stores; True when any name was found."""
    a, window = rec.a, rec.window
    found = False
    for n in rec.ops:
        d = a[n]
        if d["name"]:
            continue
        name = _target(_statement(d, rec.texts))
        if name is None:
            continue
        # the stored value is the op of the line no op of the same line and iteration reads
        line, k = _line(d), window.get(n)
        if any(a[c]["kind"] == "op" and window.get(c) == k and _line(a[c]) == line
               for c, _ in rec.out[n]):
            continue
        d["name"] = name
        found = True
    return found


def _names_from_ops(rec: _Rec) -> None:
    """Book names by role when the source is unknown: L, o / yhat, h (h2, ...)."""
    a, role = rec.a, rec.role
    names: dict[tuple, str] = {}
    for n in rec.ops:  # losses and what they read
        if n not in role or a[n]["op"] not in LOSS_OPS:
            continue
        names.setdefault(role[n], "L")
        for p, e in rec.inn[n]:
            if e["arg"] != 0 or p not in role:
                continue
            if a[p]["op"] in SOFTMAX:
                names.setdefault(role[p], "yhat")
                p = next((q for q, _ in rec.inn[p] if q in role), None)
            if p is not None:
                names.setdefault(role[p], "o")
    states = [r for r in dict.fromkeys(rec.carried.values()) if r is not None and r not in names]
    if not states:  # the output is carried (fig. 10.4): the activation is the hidden state
        states = list(dict.fromkeys(role[n] for n in rec.ops if n in role and
                                    a[n]["op"] in ACTIVATIONS and role[n] not in names))
    for i, r in enumerate(states):
        names[r] = "h" if i == 0 else f"h{i + 1}"
    for n, r in role.items():
        if r in names and not a[n]["name"]:
            a[n]["name"] = names[r]


def _name_leaves(rec: _Rec, use_source: bool) -> None:
    """Initial states take the name of the state they start; step inputs x, targets y (or
    the variable they were sliced from, read off the source line)."""
    a, role = rec.a, rec.role
    later = sorted(rec.order, key=lambda n: n in rec.initial)  # initial states last
    slot_name: dict[tuple, str] = {}
    for n in later:
        d = a[n]
        if d["kind"] not in ("input", "const") or rec.inn[n] or not rec.out[n]:
            continue
        if n in rec.initial and not d["name"]:  # named after what later steps read there
            if not slot_name:
                slot_name = _slot_names(rec)
            d["name"] = next((slot_name[role.get(v), e["arg"]] for v, e in rec.out[n]
                              if (role.get(v), e["arg"]) in slot_name), None)
        if d["name"]:
            continue
        # a target read by the loss (and maybe by the next step: teacher forcing) is y
        v, e = min(rec.out[n], key=lambda ve: (not _is_target(a[ve[0]], ve[1]), rec.pos[ve[0]]))
        name = None
        if use_source:
            name = _operand_name(rec, v, e["arg"])
            if name is not None and name == _target(_statement(a[v], rec.texts)):
                name = None  # the start of `total = total + L`: a Python number, not a variable
        elif d["step"] is not None:
            name = "y" if _is_target(a[v], e) else ("x" if d["kind"] == "input" else None)
        d["name"] = name


def _slot_names(rec: _Rec) -> dict[tuple, str]:
    """(role of a reader, argument) -> the name of the value later steps read there."""
    a, role, window = rec.a, rec.role, rec.window
    found: dict[tuple, str] = {}
    for u in rec.carried:
        here = window.get(u, a[u]["step"])
        if a[u]["name"] and here is not None:
            for v, e in rec.out[u]:
                if window.get(v, 0) > here:
                    found.setdefault((role[v], e["arg"]), a[u]["name"])
    return found


def _is_target(d: dict, e: dict) -> bool:
    return d["op"] in LOSS_OPS and e["arg"] > 0


def _operand_name(rec: _Rec, v: Any, arg: int) -> str | None:
    """The variable behind argument ``arg`` of op ``v`` on its source line (``U @ x[t]`` -> x).

    Every expression of the line that records ``v``'s op is a candidate; those whose operands
    name the parameters ``v`` reads come first. The name is taken only when the candidates
    agree on a plain variable (or a slice of one) at that position.
    """
    stmt = _statement(rec.a[v], rec.texts)
    if stmt is None:
        return None
    op = rec.a[v]["op"]
    pinned = {e["arg"]: rec.a[p]["name"] for p, e in rec.inn[v]
              if rec.a[p]["kind"] == "param" and rec.a[p]["name"]}
    key = (_line(rec.a[v]), op, arg, tuple(sorted(pinned.items())))
    if key not in rec.operands:  # once per line, however many steps run it
        rec.operands[key] = _operand_in(stmt, op, arg, pinned)
    return rec.operands[key]


def _operand_in(stmt: ast.stmt, op: str, arg: int, pinned: dict) -> str | None:
    found, loose = set(), set()
    for node in ast.walk(stmt):
        operands = None
        if isinstance(node, ast.BinOp) and _BINOPS.get(type(node.op)) == op:
            operands = [node.left, node.right]
        elif isinstance(node, ast.Subscript) and op == "getitem":
            operands = [node.value]
        elif isinstance(node, ast.Call):
            f = node.func
            fname = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
            if fname == op:
                operands = list(node.args)
                if isinstance(f, ast.Attribute) and not _is_module(f.value):
                    operands = [f.value] + operands  # a method: x.tanh()
        if operands is None or arg >= len(operands):
            continue
        name = _base_name(operands[arg])
        loose.add(name)
        if all(j < len(operands) and _base_name(operands[j]) == p for j, p in pinned.items()):
            found.add(name)
    for names in (found, loose):
        if len(names) == 1:
            return names.pop()
        if names:
            return None
    return None


def _is_module(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id in ("tg", "tinygraph", "np")


def _base_name(node: ast.expr) -> str | None:
    """``x`` for ``x``, ``x[t]``, ``x[:, t]``, ``self.x[t]``; None for anything computed."""
    while isinstance(node, ast.Subscript):
        node = node.value
    return _name_of(node)


def _name_of(node: ast.expr) -> str | None:
    """``h`` for ``h`` and ``self.h``; None for anything else."""
    return node.id if isinstance(node, ast.Name) else (
        node.attr if isinstance(node, ast.Attribute) else None)
