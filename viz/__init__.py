"""viz: draw tinygraph's recorded graphs folded and unfolded, and how gradients flow through time.

Flow: tinygraph export (networkx.DiGraph in the documented schema, or its JSON) -> **viz**.
viz imports nothing from tinygraph: it reads the schema in docs/CONTRACT.md, so it also draws
saved JSON graphs and graphs from other engines converted to that schema.

Modules, in the order data flows through them:

- ``schema`` (load, check, normalise; below it ``columnar`` reads columnar files, with ``errors``
  and ``gcpause``) with ``infer`` (the time steps and names of a plain loop
  recorded without ``tg.step`` / ``.named``; ``inference_note`` when it cannot decide) and
  ``join`` (per-step terms made outside ``tg.step`` join the step they read);
- ``names`` (the label rule: one variable drawn once, no two things under one label);
- ``levels`` (the variable level), ``timeline`` (time axes, delay edges, elision);
- ``fold`` (the folded quotient graph) and ``unfold`` (the unfolded graph's columns and rows);
- ``horizon`` (per-variable findings from the exported flow: horizon, decay, spectra) ->
  ``diagnose`` (one verdict, the Report);
- ``style`` and ``grads`` (looks, gradient overlays) -> ``header`` (what every figure shares:
  header with legend and notes, labels, tooltips) -> ``figure`` (the Figure every view returns);
- the views: ``unfolded`` (with ``tree`` for a recursive net recorded per node), ``folded``,
  ``graphical_model``;
- ``charts`` (gradient through time) and ``flowmap`` (per-loss-term flow heat maps), matplotlib;
- ``html`` (the interactive page) and ``render`` (files: SVG, PNG, PDF, DOT, HTML);
- ``__main__`` (command line).
"""
from __future__ import annotations

try:  # the optional extra: say how to get it, not a bare "No module named networkx"
    import graphviz as _graphviz  # noqa: F401
    import networkx as _networkx  # noqa: F401
except ImportError as _exc:
    raise ImportError(f"viz needs the Python package {_exc.name!r}, part of the optional extra "
                      f"`viz`: pip install \"tinygraph[viz]\" (pictures also need Graphviz's "
                      f"`dot` program: apt-get install graphviz)", name=_exc.name) from _exc

from .charts import gradient_chart, param_contributions
from .diagnose import Report, Series, diagnose, recurrent_series
from .flowmap import flow_map
from .fold import fold
from .fold import fold as folded_graph
from .folded import folded
from .graphical_model import graphical_model
from .levels import variable_level
from .figure import Figure, GraphvizError, GraphvizNotFound
from .render import render
from .schema import SchemaError, load, save_json
from .unfolded import unfolded, unfolded_graph

__all__ = [
    "Figure", "GraphvizError", "GraphvizNotFound", "Report", "SchemaError", "Series", "diagnose",
    "flow_map", "fold",
    "folded", "folded_graph", "gradient_chart", "graphical_model", "load", "param_contributions",
    "recurrent_series", "render", "save_json", "unfolded", "unfolded_graph", "variable_level",
]
