"""tinygraph: a small reverse-mode autodiff engine on numpy, made for recurrent networks.

Flow: model code calls ops on Tensors inside ``scope()`` / ``step()`` contexts -> every op
appends a Node to a tape -> ``backward`` is one reverse sweep over that tape -> ``trace`` exports
the graph (networkx / JSON) -> the separate ``viz`` package draws it.

Inside the package the imports run one way (a test checks it): ``registry``, ``tape`` ->
``anomaly`` -> ``tensor`` -> ``autograd`` -> ``ops_*`` -> ``ops`` -> ``debug``, ``export`` ->
``nn``, ``optim``, ``tbptt``, ``tasks``. The op functions and ``__all__``'s op names come from
the op table `OPS`.
"""
from __future__ import annotations

from .version import __version__
from .autograd import contributions, grad
from .debug import AnomalyError, GradcheckError, GradcheckResult, detect_anomaly, gradcheck
from .export import Graph, trace
from . import ops as _ops
from .ops import *  # noqa: F401,F403  (one function per entry of OPS; ops.__all__ is the table)
from .flow import GradientFlow, VariableFlow, flow
from .registry import OPS
from .tape import isolated, new_graph, no_grad, recording, scope, step
from .creation import as_tensor, from_numpy, full, ones, randn, tensor, uniform, zeros
from .tensor import Parameter, Tensor

from . import nn, optim  # noqa: E402  (they build on everything above)

__all__ = [
    "Tensor", "Parameter", "tensor", "as_tensor", "from_numpy", "zeros", "ones", "full", "randn",
    "uniform", *_ops.__all__,
    "scope", "step", "no_grad", "recording", "new_graph", "isolated", "grad", "contributions",
    "trace", "Graph", "detect_anomaly", "gradcheck", "GradcheckResult", "GradcheckError",
    "AnomalyError", "OPS", "nn", "optim", "__version__",
    "flow", "GradientFlow", "VariableFlow",
]
