"""tinygraph.nn: the recurrent architectures of Deep Learning ch. 10, as modules.

Flow: model code builds these modules and calls them; each call opens a scope named after the
module and each recurrent step a ``tg.step(t)``, so the recorded tape (and every graph exported
from it) reads in the book's notation: x(t), h(t), o(t), L(t) under ``rnn/cell``.

| module | figure / equation |
|---|---|
| `DynamicalSystem` | eq. 10.1-10.5, fig. 10.1-10.2 |
| `RNN` (``output="every"``) | fig. 10.3, eq. 10.8-10.11 |
| `RNN` (``output="last"``) | fig. 10.5 |
| `JordanRNN` | fig. 10.4, teacher forcing fig. 10.6 |
| `BidirectionalRNN` | fig. 10.11 |
| `Seq2Seq`, `Encoder`, `Decoder` | fig. 10.12 |
| `DeepRNN` (``kind=`` stacked, deep_transition, skip) | fig. 10.13 a, b, c |
| `RecursiveNN` | fig. 10.14 |
| `LSTM`, `GRU` (`LSTMCell`, `GRUCell`) | section 10.10 (PyTorch's equations and layout) |

Every time loop runs through `loop.run` (steps, padding masks, h(0), the output layer).
`RNN(..., fused=True)` records the recurrence as one ``elman_scan`` op instead (`fused`).
"""
from __future__ import annotations

from .bidirectional import BiOutput, BidirectionalRNN
from .deep import DeepRNN, DeepTransitionCell
from .gated import GRU, LSTM, GRUCell, LSTMCell
from .jordan import JordanRNN
from .linear import Embedding, Linear
from .loop import Recurrent, per_step
from .loss import sequence_loss, step_grads
from .module import Module, per_step_copies
from .recursive import RecursiveNN, TreeOutput, balanced_tree, tree_depth
from .rnn import DynamicalSystem, RNN, RNNCell, RNNOutput
from .seq2seq import Decoder, Encoder, Seq2Seq

__all__ = ["Module", "Linear", "Embedding", "RNNCell", "RNN", "RNNOutput", "DynamicalSystem",
           "JordanRNN", "BidirectionalRNN", "BiOutput", "Encoder", "Decoder", "Seq2Seq",
           "DeepRNN", "DeepTransitionCell", "RecursiveNN", "TreeOutput", "balanced_tree",
           "tree_depth", "sequence_loss", "step_grads", "per_step_copies", "per_step", "Recurrent",
           "LSTMCell", "GRUCell", "LSTM", "GRU"]
