"""tinygraph: a small reverse-mode autodiff engine on numpy, made for recurrent networks.

Flow: model code calls ops on Tensors inside ``scope()`` / ``step()`` contexts -> every op
appends a Node to a tape -> ``backward`` is one reverse sweep over that tape -> ``trace`` exports
the graph (networkx / JSON) -> the separate ``viz`` package draws it.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .autograd import contributions, grad
from .debug import AnomalyError, GradcheckError, GradcheckResult, detect_anomaly, gradcheck
from .export import Graph, trace
from .ops import (add, argmax, concat, cross_entropy, detach, div, embedding, exp, getitem,
                  identity, log, log_softmax, matmul, max, mean, mse_loss, mul, neg, nll_loss,
                  one_hot, pow, relu, reshape, sigmoid, softmax, split, stack, sub, sum, tanh,
                  transpose, where)
from .registry import OPS
from .tape import isolated, new_graph, no_grad, recording, scope, step
from .tensor import Parameter, Tensor, full, ones, randn, tensor, uniform, zeros

from . import nn, optim  # noqa: E402  (they build on everything above)

__all__ = [
    "Tensor", "Parameter", "tensor", "zeros", "ones", "full", "randn", "uniform",
    "add", "sub", "mul", "div", "neg", "pow", "matmul", "exp", "log", "tanh", "sigmoid", "relu",
    "sum", "mean", "max", "reshape", "transpose", "getitem", "concat", "stack", "split", "where",
    "softmax", "log_softmax", "cross_entropy", "nll_loss", "mse_loss", "embedding", "detach", "argmax",
    "identity",
    "one_hot", "scope", "step", "no_grad", "recording", "new_graph", "isolated", "grad", "contributions",
    "trace", "Graph", "detect_anomaly", "gradcheck", "GradcheckResult", "GradcheckError",
    "AnomalyError", "OPS", "nn", "optim", "__version__",
]
