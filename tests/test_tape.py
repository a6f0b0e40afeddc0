"""Tape and recording state: per thread, per asyncio task, per isolated generator; stable `src`.

The recording state (`scope`, `step`, `no_grad`, the debug switches and the current tape) lives
in a context variable, so real threads, interleaved asyncio tasks and generators each keep
their own. These tests interleave them on purpose (barriers, events, `await sleep(0)`) and check
the results against runs that do the same work one after the other.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import tinygraph as tg
from tinygraph import nn, optim
from tinygraph import tape as tp

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------
# threads
# ------------------------------------------------------------------------------------------------

def _train(seed: int, iters: int, barrier: threading.Barrier | None = None, role: int = 0) -> dict:
    """Train a small Elman RNN (nn.RNN + sequence_loss) and keep every loss and gradient.

    The forward runs in two halves (h(0) of the second is h(4) of the first: the same sums). With
    a barrier, two threads run their first halves together, then one finishes its forward and its
    backward while the other waits with half a graph recorded, then the other finishes: so one
    thread's backward always falls in the middle of the other's forward.
    """
    rng = np.random.default_rng(seed)
    model = nn.RNN(4, 6, 4, rng=seed)
    opt = optim.SGD(model.parameters(), lr=0.1)
    x, y = rng.integers(0, 4, (2, 7)), rng.integers(0, 4, (2, 7))
    losses, grads = [], []

    def wait():
        if barrier is not None:
            barrier.wait()

    for it in range(iters):
        opt.zero_grad()
        wait()
        first = model(x[:, :4])
        wait()
        if barrier is not None and (it + role) % 2:  # take turns at going first
            wait()
        second = model(x[:, 4:], state=first.h[-1])
        loss = nn.sequence_loss(first.o + second.o, y)
        loss.backward()
        if barrier is not None and (it + role) % 2 == 0:
            wait()
        losses.append(loss.item())
        grads.append([p.grad.copy() for p in model.parameters()])
        opt.step()
    return {"losses": losses, "grads": grads,
            "params": [p.data.copy() for p in model.parameters()]}


def _run_threads(fns: list, barrier: threading.Barrier | None = None) -> list:
    out: list = [None] * len(fns)
    errors: list = []

    def run(k, fn):
        try:
            out[k] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the test thread below
            errors.append(e)
            if barrier is not None:
                barrier.abort()     # the other thread stops waiting for this one

    threads = [threading.Thread(target=run, args=(k, fn)) for k, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return out


def test_two_threads_training_two_rnns_get_the_single_threaded_gradients():
    iters = 40
    alone = [_train(1, iters), _train(2, iters)]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: many interleavings inside each op
    try:
        barrier = threading.Barrier(2, timeout=60)
        together = _run_threads([lambda: _train(1, iters, barrier, role=0),
                                 lambda: _train(2, iters, barrier, role=1)], barrier)
    finally:
        sys.setswitchinterval(old)
    for a, b in zip(alone, together):
        assert a["losses"] == b["losses"]
        for ga, gb in zip(a["grads"], b["grads"]):
            for u, v in zip(ga, gb):
                np.testing.assert_array_equal(u, v)
        for u, v in zip(a["params"], b["params"]):
            np.testing.assert_array_equal(u, v)


def test_each_thread_records_on_its_own_tape_with_its_own_scope_and_step():
    barrier = threading.Barrier(2, timeout=60)

    def record(name, t):
        x = tg.tensor([1.0, 2.0], requires_grad=True)
        with tg.scope(name), tg.step(t):
            barrier.wait()          # both threads are inside their contexts now
            y = x * 2.0
            barrier.wait()
            z = y + 1.0
        return {"tape": z._tape, "nodes": [(n["scope"], n["step"]) for n in tg.trace(z).nodes
                                           if n["kind"] == "op"]}

    a, b = _run_threads([lambda: record("a", 1), lambda: record("b", 2)], barrier)
    assert a["tape"] is not b["tape"]
    assert a["nodes"] == [("a", 1), ("a", 1)] and b["nodes"] == [("b", 2), ("b", 2)]


def test_no_grad_in_one_thread_does_not_touch_another():
    entered, checked = threading.Event(), threading.Event()

    def inference():
        with tg.no_grad():
            entered.set()
            assert checked.wait(10)
            return (tg.tensor([1.0], requires_grad=True) * 2).requires_grad

    def training():
        assert entered.wait(10)
        try:
            x = tg.tensor([3.0], requires_grad=True)
            y = x * x
            y.backward()
            return y.requires_grad, float(x.grad[0])
        finally:
            checked.set()

    inside_no_grad, (requires, grad) = _run_threads([inference, training])
    assert inside_no_grad is False
    assert requires is True and grad == 6.0


def test_a_tensor_from_another_thread_is_an_input_there_and_backward_says_so():
    W = tg.Parameter(np.array([2.0]), name="W")
    h = (W * 3.0).named("h")                       # recorded here, graph still open

    def other():
        loss = (h * W).sum()
        with pytest.raises(RuntimeError, match="another thread or asyncio task"):
            loss.backward()
        return (h.detach() * W).sum()
    (detached,) = _run_threads([other])
    W.grad = None
    detached.backward()                             # detached: an input, as the message says
    np.testing.assert_array_equal(W.grad, [6.0])


def test_a_new_thread_starts_from_the_default_state():
    with tg.scope("outer"), tg.step(5), tg.no_grad():
        (st,) = _run_threads([tp.current_state])
    assert (st.scope, st.step, st.grad_enabled) == ("", None, True)


def test_a_thread_handed_a_copied_context_still_records_on_its_own_tape():
    # asyncio.to_thread copies the caller's context (and so its state) into a worker thread
    async def main():
        W = tg.Parameter(np.array([2.0]), name="W")
        y = W * 3.0                                  # the task's graph, still open
        other = await asyncio.to_thread(lambda: (W * W).sum())
        other.backward()                             # releases the worker's tape only
        assert other._tape is not y._tape
        np.testing.assert_array_equal(W.grad, [4.0])
        W.grad = None
        (y * 1.0).sum().backward()
        np.testing.assert_array_equal(W.grad, [3.0])
    asyncio.run(main())


# ------------------------------------------------------------------------------------------------
# asyncio tasks
# ------------------------------------------------------------------------------------------------

def test_two_interleaved_tasks_keep_their_scopes_steps_and_gradients():
    log = []

    async def task(name, seed):
        rng = np.random.default_rng(seed)
        W = tg.Parameter(rng.standard_normal((3, 3)), name="W")
        h = tg.tensor(rng.standard_normal(3))
        with tg.scope(name):
            for t in range(4):
                with tg.step(t):
                    h = tg.tanh(W @ h)
                    log.append((name, t))
                    await asyncio.sleep(0)   # the other task runs here, inside its own contexts
        loss = h.sum()
        stamps = {(n["scope"], n["step"]) for n in tg.trace(loss).nodes if n["kind"] == "op"}
        loss.backward()
        return stamps, W.grad

    async def main():
        return await asyncio.gather(task("a", 0), task("b", 1))

    (sa, ga), (sb, gb) = asyncio.run(main())
    assert log[:2] == [("a", 0), ("b", 0)]          # they did interleave
    assert sa == {("a", t) for t in range(4)} | {("", None)}
    assert sb == {("b", t) for t in range(4)} | {("", None)}
    for seed, got in ((0, ga), (1, gb)):            # the same work, alone in a plain loop
        rng = np.random.default_rng(seed)
        W = tg.Parameter(rng.standard_normal((3, 3)))
        h = tg.tensor(rng.standard_normal(3))
        for _ in range(4):
            h = tg.tanh(W @ h)
        h.sum().backward()
        np.testing.assert_array_equal(got, W.grad)


def test_a_child_task_never_releases_its_parents_graph():
    async def main():
        W = tg.Parameter(np.array([1.5]), name="W")
        y = W * W                                       # parent's graph, not yet backpropagated

        async def child():
            z = (W * 4.0).sum()
            z.backward()                                # releases the child's tape only
            return z._tape
        child_tape = await asyncio.create_task(child())
        assert child_tape is not y._tape and not y._tape.released
        W.grad = None
        (y + 1.0).sum().backward()
        np.testing.assert_array_equal(W.grad, [3.0])
    asyncio.run(main())


def test_no_grad_in_a_task_does_not_touch_another_task():
    async def main():
        entered = asyncio.Event()

        async def inference():
            with tg.no_grad():
                entered.set()
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                return tp.current_state().grad_enabled

        async def training():
            await entered.wait()
            return (tg.tensor([1.0], requires_grad=True) * 2).requires_grad
        return await asyncio.gather(inference(), training())
    assert asyncio.run(main()) == [False, True]


# ------------------------------------------------------------------------------------------------
# generators
# ------------------------------------------------------------------------------------------------

def _steps(name, W, h, n):
    with tg.scope(name):
        for t in range(n):
            with tg.step(t):
                h = tg.tanh(W @ h)
            got = yield h
            if got is not None:
                h = h + got


def test_isolated_generators_interleave_without_nesting_scopes():
    rng = np.random.default_rng(3)
    W = tg.Parameter(rng.standard_normal((2, 2)), name="W")
    h0 = tg.tensor(rng.standard_normal(2))
    a, b = tg.isolated(_steps("a", W, h0, 3)), tg.isolated(_steps("b", W, h0, 3))
    outs = []
    for ha, hb in zip(a, b):                   # a, b, a, b, ...: interleaved in one thread
        assert tp.current_state().scope == "" and tp.current_state().step is None
        outs.append(ha * hb)
    assert tp.current_state().scope == ""
    loss = tg.stack(outs).sum()
    stamps = {(n["scope"], n["step"], n["op"]) for n in tg.trace(loss).nodes if n["op"] == "tanh"}
    assert stamps == {(s, t, "tanh") for s in "ab" for t in range(3)}
    loss.backward()                             # one tape: the generators' ops feed the loss
    ref = tg.Parameter(W.data.copy())
    ha = hb = h0
    total = 0.0
    for _ in range(3):
        ha, hb = tg.tanh(ref @ ha), tg.tanh(ref @ hb)
        total = total + (ha * hb).sum()
    total.backward()
    np.testing.assert_allclose(W.grad, ref.grad, rtol=1e-13, atol=1e-15)


def test_isolated_passes_send_throw_close_and_the_return_value():
    def gen():
        with tg.scope("g"):
            try:
                got = yield tp.current_state().scope
                yield got
            except KeyError:
                yield "caught"
            return "done"

    g = tg.isolated(gen())
    assert next(g) == "g" and g.send(7) == 7
    assert g.throw(KeyError("k")) == "caught"
    with pytest.raises(StopIteration) as stop:
        next(g)
    assert stop.value.value == "done"
    closed = []

    def gen2():
        try:
            yield 1
        finally:
            closed.append(tp.current_state().scope)
    with tg.scope("outer"):
        g2 = tg.isolated(gen2())
    next(g2)
    g2.close()
    assert closed == ["outer"]             # closed inside its own (copied) context


def test_a_plain_generator_shares_its_callers_context():
    # documented behaviour (README): without tg.isolated a generator's open scope is the caller's
    def gen():
        with tg.scope("g"):
            yield
    g = gen()
    next(g)
    assert tp.current_state().scope == "g"
    next(g, None)
    assert tp.current_state().scope == ""


# ------------------------------------------------------------------------------------------------
# contexts
# ------------------------------------------------------------------------------------------------

def test_contexts_nest_and_restore_even_after_an_error():
    with pytest.raises(RuntimeError):
        with tg.scope("a"), tg.step(2), tg.no_grad(), tg.recording(values=True):
            st = tp.current_state()
            assert (st.scope, st.step, st.grad_enabled, st.source, st.values) == ("a", 2, False, True, True)
            with tg.scope("b") as path:
                assert path == "a/b"
            raise RuntimeError("boom")
    st = tp.current_state()
    assert (st.scope, st.step, st.grad_enabled, st.source, st.values) == ("", None, True, False, False)


def test_a_tape_started_inside_a_context_survives_its_exit():
    x = tg.tensor([2.0], requires_grad=True)
    (x * 1.0).sum().backward()                  # the current tape is released
    x.grad = None
    with tg.scope("s"):
        y = x * 3.0                             # a new tape starts in here
    z = (y * y).sum()                           # ... and is still the current one out here
    assert z._tape is y._tape
    z.backward()
    np.testing.assert_allclose(x.grad, [6.0 * 6.0])


def test_scope_and_step_reject_bad_arguments():
    with pytest.raises(ValueError, match="scope"):
        tg.scope("a/b")
    with pytest.raises(TypeError, match="step"):
        tg.step(1.5)


# ------------------------------------------------------------------------------------------------
# src: the same program gives the same bytes from any working directory
# ------------------------------------------------------------------------------------------------

PROG = textwrap.dedent("""
    import numpy as np
    import tinygraph as tg

    W = tg.Parameter(np.eye(2), name="W")
    h = tg.tensor([1.0, -1.0], name="h")
    with tg.recording(source=True):
        for t in range(2):
            with tg.step(t):
                h = tg.tanh(W @ h).named("h")
        loss = h.sum()
    print(tg.trace(loss).to_json())
""")


@pytest.mark.parametrize("project", [True, False], ids=["in-a-project", "loose-file"])
def test_src_does_not_depend_on_the_working_directory(tmp_path, project):
    base = tmp_path / "proj"
    (base / "sub").mkdir(parents=True)
    if project:
        (base / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    script = base / "sub" / "prog.py"
    script.write_text(PROG)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    runs = [(str(script), elsewhere), (str(script), tmp_path), ("sub/prog.py", base),
            ("prog.py", base / "sub"), (os.path.relpath(script, elsewhere), elsewhere)]
    outs = [subprocess.run([sys.executable, arg], cwd=cwd, env=env, capture_output=True,
                           check=True).stdout for arg, cwd in runs]
    assert all(o == outs[0] for o in outs[1:])
    srcs = {n["src"] for n in json.loads(outs[0])["nodes"] if n["op"] == "tanh"}
    assert srcs == {("sub/prog.py" if project else "prog.py") + ":10"}


def test_src_names_the_file_from_its_project_root():
    x = tg.tensor([1.0], requires_grad=True)
    with tg.recording():
        y = x * 2.0
    assert y._tape.src[y._idx].startswith("tests/test_tape.py:")
