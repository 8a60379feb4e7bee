"""The two things every notebook of the series does first: read its parameters, and show tables.

A notebook's first code cell holds its papermill ``parameters`` (plain variables). Its second cell is::

    from helpers import notebook_setup, show
    paths = notebook_setup(globals())

:func:`notebook_setup` does for environment variables what papermill does for ``-p name value``: each
``SERIES_<NAME>`` that is set replaces the parameter ``name`` in the notebook's namespace (converted to the
parameter's type, and printed, so an executed notebook shows what it really ran with). The test suite and
``environment/series.sh`` use this to run every notebook with other settings without editing it. It returns
the :class:`~helpers.config.ArtifactPaths` below the ``artifacts_dir`` parameter.
"""

from __future__ import annotations

from typing import Any, MutableMapping, Sequence

from .config import ArtifactPaths, apply_env_overrides
from .errors import ConfigError

#: Values a papermill parameter can hold; every other name in a notebook's namespace is not a parameter.
_PARAMETER_TYPES = (str, int, float, bool, type(None))


def parameters_of(namespace: MutableMapping[str, Any]) -> dict[str, Any]:
    """The notebook's parameters: every public name whose value is a str, number, bool or None.

    Call it (through :func:`notebook_setup`) in the cell after the parameters: IPython's own names (``In``,
    ``Out``, ``_i1``, ``get_ipython``, ...) are private or not plain values, so only the parameters remain.
    """
    return {k: v for k, v in namespace.items() if not k.startswith("_") and isinstance(v, _PARAMETER_TYPES)}


def notebook_setup(namespace: MutableMapping[str, Any]) -> ArtifactPaths:
    """Apply ``SERIES_<NAME>`` overrides to the parameters in ``namespace`` and return the artifact paths.

    ``namespace`` is the notebook's ``globals()``; overridden parameters are written back into it, so later
    cells read them as plain variables. Every notebook has an ``artifacts_dir`` parameter.
    """
    params = parameters_of(namespace)
    if "artifacts_dir" not in params:
        raise ConfigError("notebook_setup: the parameters cell defines no artifacts_dir; run the notebook's "
                          "parameters cell first (Run > Run All Cells runs them in order).")
    namespace.update(apply_env_overrides(params))
    paths = ArtifactPaths.at(namespace["artifacts_dir"])
    print("artifacts:", paths.root)
    return paths


def show(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Display ``rows`` as a Markdown table under ``header`` (in a notebook; printed as text elsewhere)."""
    from IPython.display import Markdown, display

    from .bench.report import markdown_table

    display(Markdown(markdown_table(header, rows)))
