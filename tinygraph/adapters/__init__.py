"""Adapters: record other engines' computations into tinygraph's graph schema.

Flow: a PyTorch program -> **tinygraph.adapters.torch** (observes it) -> `tinygraph.Graph` ->
viz. Each adapter is imported on its own (``from tinygraph.adapters import torch as tgt``), so
``import tinygraph`` never imports an optional engine.
"""
from __future__ import annotations
