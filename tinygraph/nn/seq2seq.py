"""Encoder-decoder sequence-to-sequence (fig. 10.12): a context C between two RNNs.

Flow: `Seq2Seq(...)(src, src_len, tgt_in)` runs the `Encoder` (scope ``seq2seq/encoder``, steps
1..n_x) which names its summary ``C``; the `Decoder` (scope ``seq2seq/decoder``, steps 1..n_y)
reads C at every step and the previous output symbol y(t-1). Padded batches use lengths: the
encoder state stops changing past each input's end, and `sequence_loss` masks padded targets.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import tinygraph as tg
from tinygraph.tensor import Tensor

from .loop import SequenceInput, add_output, length_masks, output, run, start_state
from .module import Module, Transposed, check_ids, init_uniform, who
from .rnn import RNNCell, RNNOutput, make_rng


class Encoder(Module):
    """Input RNN: reads x(1..n_x) and emits the context C = h(n_x) (fig. 10.12, bottom).

    Parameters
    ----------
    input_size : int
        Vocabulary size (int ids) or feature size D (float inputs).
    hidden_size : int
    rng, dtype, name : see `RNN`.
    """

    def __init__(self, input_size: int, hidden_size: int, rng: Any = None,
                 dtype: Any = np.float64, name: str | None = None) -> None:
        super().__init__(name)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.cell = RNNCell(input_size, hidden_size, rng=make_rng(rng), dtype=dtype)

    def forward(self, x: Any, lengths: Any = None, state: Any = None
                ) -> tuple[Tensor, list[Tensor]]:
        """Returns (C (B, H), [h(1), ..., h(n_x)]); `state` is h(0) (zeros by default)."""
        seq = SequenceInput(self, x, self.input_size, "source x")
        B, T = seq.batch, seq.length
        masks = length_masks(self, lengths, B, T)
        h = start_state(self, state, B, self.hidden_size, self.cell.W.dtype)
        wt = self.cell.transposes()
        hs = run(lambda t, h, named: self.cell(seq.at(t), h, "h" if named else None, wt), h,
                 range(1, T + 1), masks).states
        with tg.step(T):                                   # C sits at the end of the input
            C = tg.identity(hs[-1]).named("C")             # C = h(n_x), a node of its own
        return C, hs

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


class Decoder(Module):
    """Output RNN conditioned on C (fig. 10.12, top).

    h(0) = C;  h(t) = tanh(b + W h(t-1) + R y(t-1) + U C);  o(t) = c + V h(t).

    U reads the decoder's input, the context C, at every step; R reads the previous output
    symbol (the true one under teacher forcing, the greedy choice when decoding).

    Parameters
    ----------
    output_size : int
        K, the output vocabulary.
    hidden_size : int
        H (also the size of C).
    rng, dtype, name : see `RNN`.
    """

    def __init__(self, output_size: int, hidden_size: int, rng: Any = None,
                 dtype: Any = np.float64, name: str | None = None) -> None:
        super().__init__(name)
        r = make_rng(rng)
        H, K = hidden_size, output_size
        self.output_size, self.hidden_size = K, H
        self.U = self.param("U", init_uniform(r, (H, H), H, dtype))
        self.W = self.param("W", init_uniform(r, (H, H), H, dtype))
        self.R = self.param("R", init_uniform(r, (H, K), H, dtype))
        self.b = self.param("b", init_uniform(r, (H,), H, dtype))
        add_output(self, r, K, H, dtype)

    def _transposes(self) -> tuple[Transposed, Transposed, Transposed]:
        return Transposed(self.W), Transposed(self.R), Transposed(self.V)

    def _cell(self, h: Tensor, fed: Tensor, uc: Tensor, wt: tuple) -> Tensor:
        """h(t) = tanh(b + W h(t-1) + R y(t-1) + U C) (B, H); ``uc`` = U C + b."""
        WT, RT, _ = wt
        return tg.tanh(h @ WT() + tg.embedding(RT(), fed) + uc).named("h")

    def _context(self, C: Tensor) -> Tensor:
        if C.ndim != 2 or C.shape[1] != self.hidden_size:
            raise ValueError(f"{who(self)}: expected a context C of shape (B, "
                             f"{self.hidden_size}), got {C.shape}")
        return C @ self.U.T + self.b                                        # (B, H)

    def forward(self, C: Tensor, y_in: Any) -> RNNOutput:
        """Teacher-forced pass: y_in (B, n_y) holds y(0) = BOS, y(1), ..., y(n_y - 1)."""
        y_in = check_ids(self, y_in, self.output_size, ndim=2, what="decoder inputs y_in")
        if y_in.shape[0] != C.shape[0]:
            raise ValueError(f"{who(self)}: decoder inputs have batch {y_in.shape[0]} but C has "
                             f"{C.shape[0]}")
        uc, wt = self._context(C), self._transposes()

        def step(t: int, h: Tensor, _named: bool) -> Tensor:
            with tg.step(t - 1):                                           # y(t-1)
                fed = tg.tensor(y_in[:, t - 1], name="y")
            return self._cell(h, fed, uc, wt)                              # (B, H)
        r = run(step, C, range(1, y_in.shape[1] + 1),
                emit=lambda t, h: output(self, h, wt[2]))                   # (B, K)
        return RNNOutput(o=r.outputs, h=r.states, steps=r.steps, state=r.final)

    def greedy(self, C: Tensor, bos: int, eos: int, max_len: int) -> RNNOutput:
        """Feed back argmax o(t) until every row emitted `eos` or `max_len` steps ran."""
        uc, wt, out = self._context(C), self._transposes(), RNNOutput()
        with tg.step(0):
            fed: Tensor = tg.tensor(np.full(C.shape[0], bos, dtype=np.int64), name="y")
        done = np.zeros(C.shape[0], dtype=bool)

        def step(t: int, state: tuple, _named: bool) -> tuple:
            h = self._cell(*state, uc, wt)                                 # (B, H)
            o = output(self, h, wt[2])                                     # (B, K)
            out.o.append(o)
            out.tokens.append(tg.argmax(o, axis=-1))                       # fed back at t + 1
            return h, out.tokens[-1]

        def finished(state: tuple) -> bool:
            np.logical_or(done, state[1].data == eos, out=done)
            return bool(done.all())
        r = run(step, (C, fed), range(1, max_len + 1), until=finished)
        out.h, out.state = [s[0] for s in r.states], r.final[0]
        out.steps = list(range(1, len(r.states) + 1))
        return out

    def extra_repr(self) -> str:
        return f"{self.output_size}, {self.hidden_size}"


class Seq2Seq(Module):
    """Encoder-decoder sequence-to-sequence architecture (fig. 10.12).

    Maps an input sequence to an output sequence of another length through a fixed-size
    context C. Tokens are ids; padded batches carry their lengths.

    Parameters
    ----------
    input_size : int
        Source vocabulary size.
    output_size : int
        Target vocabulary size.
    hidden_size : int
        H, also the size of C (the bottleneck the seed warns about for long inputs).
    rng : int or Generator, optional
    dtype : numpy dtype
    name : str, optional

    Examples
    --------
    >>> m = Seq2Seq(9, 9, 16, rng=0)
    >>> out = m(np.array([[3, 4, 0]]), np.array([2]), np.array([[1, 4, 3]]))
    >>> len(out.o), out.o[0].shape
    (3, (1, 9))
    """

    def __init__(self, input_size: int, output_size: int, hidden_size: int, rng: Any = None,
                 dtype: Any = np.float64, name: str | None = None) -> None:
        super().__init__(name)
        r = make_rng(rng)
        self.encoder = Encoder(input_size, hidden_size, rng=r, dtype=dtype)
        self.decoder = Decoder(output_size, hidden_size, rng=r, dtype=dtype)

    def forward(self, src: Any, src_len: Any, tgt_in: Any) -> RNNOutput:
        """Teacher-forced pass; returns the decoder's outputs o(1..n_y) (loss: `sequence_loss`)."""
        C, _ = self.encoder(src, src_len)
        return self.decoder(C, tgt_in)

    def greedy(self, src: Any, src_len: Any, bos: int, eos: int, max_len: int,
               pad: int = 0) -> np.ndarray:
        """Greedy decoding without recording: int array (B, max_len), `pad` after each EOS."""
        with tg.no_grad(), tg.scope(self.name):
            C, _ = self.encoder(src, src_len)
            with tg.scope(self.decoder.name):
                out = self.decoder.greedy(C, bos, eos, max_len)
        toks = np.stack([t.data for t in out.tokens], axis=1)
        res = np.full((toks.shape[0], max_len), pad, dtype=np.int64)
        res[:, :toks.shape[1]] = toks
        after = np.cumsum(res == eos, axis=1) - (res == eos) > 0         # strictly after 1st EOS
        res[after] = pad
        return res
