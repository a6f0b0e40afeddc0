"""LSTM and GRU: equal to PyTorch (float64, 1e-10) when installed, gradcheck always, the
literature's names and step tags, and folded views with the cell state's loop apart from h's."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import tinygraph as tg
from tinygraph import nn
from tinygraph.tbptt import sequence_step, tbptt

from nn_helpers import module_gradcheck, rel_err

KINDS = ["LSTM", "GRU"]
GATES = {"LSTM": {"i", "f", "g", "o", "c", "h"}, "GRU": {"r", "z", "n", "h"}}


def make(kind, *args, **kw):
    return getattr(nn, kind)(*args, **kw)


def initial(kind, rng, B, H):
    h0 = rng.standard_normal((B, H))
    return (h0, rng.standard_normal((B, H))) if kind == "LSTM" else h0


# ------------------------------------------------------------------------------------------------
# against PyTorch
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ids", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_sequence_module_equals_torch_outputs_states_and_every_gradient(kind, ids):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0 + ids)
    B, T, D, H = 3, 7, 4, 5
    ref = getattr(torch.nn, kind)(D, H, batch_first=True).double()
    m = make(kind, D, H, rng=1)
    m.load_state_dict(ref.state_dict())            # torch's keys (weight_ih_l0, ...) and tensors
    if ids:
        x_ids = rng.integers(0, D, (B, T))
        x_np = np.eye(D)[x_ids]                    # torch reads the one-hot rows
    else:
        x_np = rng.standard_normal((B, T, D))
    s0 = initial(kind, rng, B, H)
    R = rng.standard_normal((B, T, H))             # a loss that weighs every h(t)
    Rc = rng.standard_normal((B, H))               # ... and the final cell state

    xt = torch.tensor(x_np, requires_grad=True)
    st = (tuple(torch.tensor(s[None], requires_grad=True) for s in s0) if kind == "LSTM"
          else torch.tensor(s0[None], requires_grad=True))
    y, fin = ref(xt, st)
    loss_t = (y * torch.tensor(R)).sum()
    if kind == "LSTM":
        loss_t = loss_t + (fin[1][0] * torch.tensor(Rc)).sum()
    loss_t.backward()

    x = x_ids if ids else tg.tensor(x_np, requires_grad=True)
    state = (tuple(tg.tensor(s, requires_grad=True) for s in s0) if kind == "LSTM"
             else tg.tensor(s0, requires_grad=True))
    out = m(x, state=state)
    loss = (tg.stack(out.h, axis=1) * R).sum()
    if kind == "LSTM":
        loss = loss + (out.state[1] * Rc).sum()
    loss.backward()

    assert abs(loss.item() - loss_t.item()) <= 1e-10 * abs(loss_t.item())
    for t in range(T):
        assert rel_err(out.h[t].data, y[:, t].detach().numpy()) < 1e-10, t
    finals = out.state if kind == "LSTM" else (out.state,)
    for ours, theirs in zip(finals, fin if kind == "LSTM" else (fin,)):
        assert rel_err(ours.data, theirs[0].detach().numpy()) < 1e-10
    theirs = dict(ref.named_parameters())
    for k, p in m.named_parameters():
        tk = k.split(".")[-1] + "_l0"
        assert p.grad.shape == tuple(theirs[tk].shape)
        assert rel_err(p.grad, theirs[tk].grad.numpy()) < 1e-10, k
    for ours, theirs in zip(state if kind == "LSTM" else (state,), st if kind == "LSTM" else (st,)):
        assert rel_err(ours.grad, theirs.grad[0].numpy()) < 1e-10
    if not ids:
        assert rel_err(x.grad, xt.grad.numpy()) < 1e-10


@pytest.mark.parametrize("kind", KINDS)
def test_cell_loads_a_torch_cell_state_dict_as_it_is_and_equals_one_step(kind):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    B, D, H = 4, 3, 6
    ref = getattr(torch.nn, kind + "Cell")(D, H).double()
    cell = getattr(nn, kind + "Cell")(D, H, rng=0)
    assert [k for k, _ in cell.named_parameters()] == list(ref.state_dict())
    cell.load_state_dict(ref.state_dict())
    x, s0 = rng.standard_normal((B, D)), initial(kind, rng, B, H)
    got = cell(tg.tensor(x), tuple(tg.tensor(s) for s in s0) if kind == "LSTM" else tg.tensor(s0))
    want = ref(torch.tensor(x), tuple(torch.tensor(s) for s in s0) if kind == "LSTM"
               else torch.tensor(s0))
    for a, b in zip(got if kind == "LSTM" else (got,), want if kind == "LSTM" else (want,)):
        assert rel_err(a.data, b.detach().numpy()) < 1e-12


# ------------------------------------------------------------------------------------------------
# gradcheck (always) and the module's behaviour
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["every_float", "every_ids_padded", "last_ids"])
@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck(kind, case):
    rng = np.random.default_rng(3)
    B, T, D, H, K = 2, 4, 3, 3, 3
    y = rng.integers(0, K, (B, T))
    if case == "every_float":
        m, x = make(kind, D, H, K, rng=0), rng.standard_normal((B, T, D))
        fn = lambda: nn.sequence_loss(m(x).o, y)                                  # noqa: E731
    elif case == "every_ids_padded":
        m, x, n = make(kind, D, H, K, rng=0), rng.integers(0, D, (B, T)), np.array([4, 2])
        mask = np.arange(T)[None] < n[:, None]
        fn = lambda: nn.sequence_loss(m(x, lengths=n).o, y, mask=mask)            # noqa: E731
    else:
        m, x = make(kind, D, H, K, output="last", rng=0), rng.integers(0, D, (B, T))
        fn = lambda: tg.cross_entropy(m(x).last, y[:, 0])                          # noqa: E731
    res = module_gradcheck(m, fn)
    assert res.ok, str(res)


@pytest.mark.parametrize("kind", KINDS)
def test_graph_names_the_gates_and_states_with_step_tags(kind):
    rng = np.random.default_rng(4)
    m = make(kind, 3, 4, 2, rng=0)
    loss = nn.sequence_loss(m(rng.integers(0, 3, (2, 5))).o, rng.integers(0, 2, (2, 5)))
    nodes = [d for _, d in tg.trace(loss).to_networkx().nodes(data=True)]
    cell = f"{m.name}/cell"
    for v in GATES[kind]:
        got = [d for d in nodes if d["name"] == v and d["scope"] == cell and d["kind"] == "op"]
        assert [d["step"] for d in got] == [1, 2, 3, 4, 5], v
    for v in ("h", "c") if kind == "LSTM" else ("h",):   # the initial states, h(0) and c(0)
        assert [d["step"] for d in nodes if d["name"] == v and d["kind"] == "input"] == [0]
    assert {d["name"] for d in nodes if d["kind"] == "param"} == {"U", "W", "b_ih", "b_hh",
                                                                   "V", "c"}
    assert [d["step"] for d in nodes if d["name"] == "o" and d["scope"] == m.name] == [1, 2, 3,
                                                                                       4, 5]


@pytest.mark.parametrize("kind", KINDS)
def test_folded_view_draws_the_cell_state_loop_apart_from_h(kind):
    viz = pytest.importorskip("viz")
    rng = np.random.default_rng(5)
    m = make(kind, 3, 4, 2, rng=0)
    loss = nn.sequence_loss(m(rng.integers(0, 3, (2, 6))).o, rng.integers(0, 2, (2, 6)))
    F = viz.fold(tg.trace(loss))
    delays = sorted((F.nodes[u]["name"], F.nodes[v]["name"], d["label"], tuple(d["lags"]))
                    for u, v, d in F.edges(data=True) if d.get("delay"))
    if kind == "LSTM":   # c(t-1) -> c(t) through f only (no weight); h(t-1) -> the gates via W
        assert delays == [("c", "c", "", (1,))] + [("h", q, "W", (1,)) for q in "fgio"]
    else:                # h(t-1) -> h(t) through z (no weight) and -> r, z, n via W
        assert delays == [("h", "h", "", (1,))] + [("h", q, "W", (1,)) for q in "nrz"]


@pytest.mark.parametrize("kind", KINDS)
def test_padded_sequences_equal_their_unpadded_runs(kind):
    m = make(kind, 4, 5, 3, output="last", rng=0)
    batch = np.array([[1, 2, 3, 0, 0], [3, 1, 0, 2, 2]])
    out = m(batch, lengths=np.array([3, 5]))
    alone = m(batch[:1, :3])
    np.testing.assert_allclose(out.last.data[0], alone.last.data[0], atol=1e-14)
    for a, b in zip(out.state if kind == "LSTM" else (out.state,),
                    alone.state if kind == "LSTM" else (alone.state,)):
        np.testing.assert_allclose(a.data[0], b.data[0], atol=1e-14)


@pytest.mark.parametrize("kind", KINDS)
def test_carrying_out_state_across_chunks_equals_one_run(kind):
    rng = np.random.default_rng(6)
    m = make(kind, 4, 5, 3, rng=0)
    x = rng.integers(0, 4, (2, 9))
    whole = m(x)
    first = m(x[:, :4])
    second = m(x[:, 4:], state=first.state)
    np.testing.assert_allclose(second.o[-1].data, whole.o[-1].data, atol=1e-13)


@pytest.mark.parametrize("kind", KINDS)
def test_tbptt_without_truncation_equals_full_bptt(kind):
    rng = np.random.default_rng(7)
    B, T, V, H = 2, 8, 4, 3
    X, Y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    m = make(kind, V, H, V, rng=0)
    full = nn.sequence_loss(m(X).o, Y, reduction="sum")
    full.backward()
    ref = {k: p.grad.copy() for k, p in m.named_parameters()}
    m.zero_grad()
    z = np.zeros((B, H))
    tbptt(sequence_step(m, X, Y, reduction="sum"), (z, z) if kind == "LSTM" else z, T,
          k1=3, k2=T)
    for k, p in m.named_parameters():
        assert rel_err(p.grad, ref[k]) < 1e-12, k


def test_float32_lstm_stays_float32():
    m = nn.LSTM(4, 5, 3, rng=0, dtype=np.float32)
    out = m(np.array([[0, 1, 2, 3]]))
    nn.sequence_loss(out.o, np.array([[0, 1, 2, 0]])).backward()
    assert out.o[0].dtype == np.float32 and out.state[1].dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in m.parameters())


def test_lstm_state_errors_name_the_module_and_what_came():
    m = nn.LSTM(3, 4)
    with pytest.raises(ValueError, match=r"LSTM 'lstm': expected state as a tuple \(h, c\)"):
        m(np.array([[0, 1]]), state=np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"LSTM 'lstm'.*state c\(0\) of shape \(1, 4\), got "
                                         r"\(1, 5\)"):
        m(np.array([[0, 1]]), state=(np.zeros((1, 4)), np.zeros((1, 5))))
    with pytest.raises(KeyError, match=r"missing keys \['cell.bias_hh'\]"):
        sd = m.state_dict()
        del sd["cell.bias_hh"]
        m.load_state_dict(sd)
    with pytest.raises(ValueError, match=r"cell.weight_ih expected shape \(16, 3\), got"):
        nn.LSTM(3, 4).load_state_dict({**m.state_dict(), "weight_ih_l0": np.zeros((12, 3))})


def test_old_keyword_h0_still_works_with_a_deprecation_warning():
    m = nn.GRU(3, 4, 2, rng=0)
    h0 = np.random.default_rng(8).standard_normal((1, 4))
    with pytest.warns(DeprecationWarning, match=r"h0= is deprecated; pass the initial state as "
                                                r"state="):
        old = m(np.array([[0, 2]]), h0=h0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = m(np.array([[0, 2]]), state=h0)
    np.testing.assert_array_equal(old.o[-1].data, new.o[-1].data)


def test_tbptt_cuts_an_lstm_state_into_leaves_named_h_and_c():
    rng = np.random.default_rng(9)
    m = nn.LSTM(4, 3, 4, rng=0)
    X, Y = rng.integers(0, 4, (2, 7)), rng.integers(0, 4, (2, 7))
    inner, seen = sequence_step(m, X, Y), []

    def step(state, t):
        seen.append((t, tuple(s.name for s in state), type(state)))
        return inner(state, t)
    z = np.zeros((2, 3))
    tbptt(step, (z, z), 7, k1=3, k2=3)
    starts = [names for t, names, kind in seen if t in (4, 7)]   # first steps of windows 2, 3
    assert starts == [("h", "c"), ("h", "c")] and all(kind is tuple for *_, kind in seen)
