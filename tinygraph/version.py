"""The package version, in a module of its own so that any module (the export writes it into
every graph) can read it without importing the `tinygraph` facade, which imports them."""
from __future__ import annotations

__version__ = "0.1.0"
