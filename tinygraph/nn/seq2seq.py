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

from .module import Module, Transposed, check_ids, init_uniform, initial_state, who
from .rnn import RNNCell, RNNOutput, SequenceInput, length_masks, make_rng


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

    def forward(self, x: Any, lengths: Any = None) -> tuple[Tensor, list[Tensor]]:
        """Returns (C (B, H), [h(1), ..., h(n_x)])."""
        seq = SequenceInput(self, x, self.input_size, "source x")
        B, T = seq.batch, seq.length
        masks = length_masks(self, lengths, B, T)
        h = initial_state(self, None, B, self.hidden_size, self.cell.W.dtype)
        wt = self.cell.transposes()
        hs = []
        hname = "h" if masks is None else None   # with padding, h is the state after the mask
        for t in range(1, T + 1):
            with tg.step(t):
                h_new = self.cell(seq.at(t), h, name=hname, wt=wt)         # (B, H)
                h = h_new if masks is None else tg.where(masks[t - 1], h_new, h).named("h")
                hs.append(h)
        with tg.step(T):                                   # C sits at the end of the input
            C = tg.identity(h).named("C")                  # C = h(n_x), a node of its own
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
        self.V = self.param("V", init_uniform(r, (K, H), H, dtype))
        self.c = self.param("c", init_uniform(r, (K,), H, dtype))

    def _transposes(self) -> tuple[Transposed, Transposed, Transposed]:
        return Transposed(self.W), Transposed(self.R), Transposed(self.V)

    def _step(self, h: Tensor, fed: Tensor, uc: Tensor, wt: tuple) -> tuple[Tensor, Tensor]:
        WT, RT, VT = wt
        a = h @ WT() + tg.embedding(RT(), fed) + uc                         # (B, H)
        h = tg.tanh(a).named("h")
        return h, (h @ VT() + self.c).named("o")                            # (B, K)

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
        uc = self._context(C)
        h, out, wt = C, RNNOutput(), self._transposes()
        for t in range(1, y_in.shape[1] + 1):
            with tg.step(t):
                with tg.step(t - 1):                                       # y(t-1)
                    fed = tg.tensor(y_in[:, t - 1], name="y")
                h, o = self._step(h, fed, uc, wt)
                out.h.append(h), out.o.append(o), out.steps.append(t)
        return out

    def greedy(self, C: Tensor, bos: int, eos: int, max_len: int) -> RNNOutput:
        """Feed back argmax o(t) until every row emitted `eos` or `max_len` steps ran."""
        uc = self._context(C)
        h, out, wt = C, RNNOutput(), self._transposes()
        with tg.step(0):
            fed: Tensor = tg.tensor(np.full(C.shape[0], bos, dtype=np.int64), name="y")
        done = np.zeros(C.shape[0], dtype=bool)
        for t in range(1, max_len + 1):
            with tg.step(t):
                h, o = self._step(h, fed, uc, wt)
                fed = tg.argmax(o, axis=-1)
                out.h.append(h), out.o.append(o), out.steps.append(t), out.tokens.append(fed)
            done |= fed.data == eos
            if done.all():
                break
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
