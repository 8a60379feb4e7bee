"""Progress bars: one choice, made here, for every loop in the package that takes long enough to want one.

:func:`tqdm` takes tqdm's own arguments and returns a tqdm bar that suits where the code runs:

* **in a Jupyter kernel with ipywidgets** (JupyterLab, VS Code, papermill, nbval): tqdm's widget bar. It is
  shown under a display id, and when it closes that display is updated once more, so the cell keeps ONE
  output whose plain-text form is the bar's final line. A notebook executed headless (papermill, nbclient,
  nbval) therefore stores a single line such as ``training: 100%|██████████| 654/654 [06:31<00:00, ...]``
  instead of tqdm's text fallback, which stores every redraw (hundreds of lines for a long loop);
* **in a kernel without ipywidgets**: a text bar kept in one output, redrawn in place through the same
  display id (no ``TqdmWarning: IProgress not found``, no redraws left behind);
* **anywhere else** (a terminal, a script, pytest): tqdm's ordinary text bar on stderr.

The choice is made on each call, so a bar made inside a kernel is a notebook bar even when ``helpers``
was imported elsewhere first. Only construction is offered (``tqdm(iterable, ...)``, ``tqdm(total=...)``);
use the returned bar's methods (``update``, ``set_postfix``, ``close``) as with tqdm.
"""

from __future__ import annotations

import io
import sys
from typing import Any

from tqdm.notebook import tqdm as WidgetBar  # imports without IPython or ipywidgets (then it cannot draw)
from tqdm.std import tqdm as TextBar

__all__ = ["tqdm", "in_kernel", "widgets_available"]


def in_kernel() -> bool:
    """True inside a Jupyter kernel (IPython with a kernel attached), False in a terminal or script."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def widgets_available() -> bool:
    """True when tqdm's notebook bar can draw a widget (ipywidgets is installed)."""
    from tqdm import notebook

    return notebook.IProgress is not None


def tqdm(*args: Any, **kwargs: Any) -> TextBar:
    """A tqdm bar for where this runs (see the module docstring); takes tqdm's arguments."""
    if not in_kernel():
        return TextBar(*args, **kwargs)
    if widgets_available():
        return _OneOutputWidgetBar(*args, **kwargs)
    return _OneOutputTextBar(*args, **kwargs)


class _OneOutputWidgetBar(WidgetBar):
    """tqdm's widget bar, shown under a display id that is updated once more when the bar closes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._handle = None
        super().__init__(*args, display=False, **kwargs)
        if not self.disable:
            from IPython.display import display

            self._handle = display(self.container, display_id=True)
            self.displayed = True

    def close(self) -> None:
        was_open = not self.disable
        super().close()
        if was_open and self._handle is not None:
            if self.leave:
                self._handle.update(self.container)  # its plain-text form is now the final line
            else:
                self._handle.update({"text/plain": ""}, raw=True)  # leave=False: the bar goes away


class _OneOutputTextBar(TextBar):
    """tqdm's text bar drawn into one display output of the cell (updated in place), not onto stderr."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._handle = None
        kwargs["file"] = io.StringIO()  # tqdm's own writes (the closing newline) go nowhere
        super().__init__(*args, **kwargs)
        if not self.disable:
            from IPython.display import display

            self._handle = display({"text/plain": str(self)}, raw=True, display_id=True)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if self._handle is not None:
            self._handle.update({"text/plain": str(self) if msg is None else msg}, raw=True)
        return True
