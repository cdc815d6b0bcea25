"""Compression Explorer backend: measure what pruning, quantization and distillation cost and buy.

The public API in one import, loaded lazily (the torch stack only when `run` is first used, so that the CLI's
store path stays fast):

    from compression import run, Recipe, PruneSpec, QuantSpec, DistillSpec, Result, Store
    result = run(Recipe(prune=PruneSpec("channel-l2", 0.5), quant=QuantSpec("int8-static")))

Never imports streamlit; every page of the app is a call into this package (docs/ARCHITECTURE.md).
"""

from importlib import import_module
from typing import Any

_PUBLIC = {  # name -> the module that defines it
    "run": "compression.pipeline", "Recipe": "compression.recipe", "PruneSpec": "compression.recipe",
    "QuantSpec": "compression.recipe", "DistillSpec": "compression.recipe", "Result": "compression.result",
    "Store": "compression.store", "CompressionError": "compression.errors",
}
__all__ = list(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'compression' has no attribute {name!r}")
    return getattr(import_module(_PUBLIC[name]), name)
