"""tinygraph.nn: the recurrent architectures of Deep Learning ch. 10, as modules.

Flow: model code builds these modules and calls them; each call opens a scope named after the
module and each recurrent step a ``tg.step(t)``, so the recorded tape (and every graph exported
from it) reads in the book's notation: x(t), h(t), o(t), L(t) under ``rnn/cell``.
"""
from __future__ import annotations

from .linear import Embedding, Linear
from .loss import sequence_loss, step_grads
from .module import Module
from .rnn import DynamicalSystem, RNN, RNNCell, RNNOutput

__all__ = ["Module", "Linear", "Embedding", "RNNCell", "RNN", "RNNOutput", "DynamicalSystem",
           "sequence_loss", "step_grads"]
