"""The error viz raises for input that breaks the graph schema.

Flow: at the bottom of `viz`: viz.columnar and viz.schema raise it; ``viz.SchemaError`` re-exports it.
"""
from __future__ import annotations


class SchemaError(ValueError):
    """The input graph does not follow the tinygraph graph schema (docs/CONTRACT.md)."""
