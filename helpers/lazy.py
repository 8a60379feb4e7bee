"""Names a package imports only when they are first used, so that importing it stays cheap.

The notebooks import their names from ``helpers`` and its packages; those names live in modules that pull in
PyTorch, TensorRT or tritonclient. A package lists them as ``name -> module`` and sets
``__getattr__ = lazy_attributes(__name__, names)``: the module is imported on the first use of one of its names.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping


def lazy_attributes(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports each of ``names`` (name -> module, relative to the
    package) from its module on first use, and refuses any other name as Python does."""

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(names[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
