"""Progress bars: widget bars in a kernel, ONE stored line in a notebook executed headless, text elsewhere.

The notebook tests execute small notebooks in a real kernel with nbclient, the library papermill and nbval
run on, and count what the executed copy keeps.
"""

from __future__ import annotations

import io

import nbformat
from nbclient import NotebookClient
from tqdm.std import tqdm as TextBar

from helpers import progress

PLAIN = "text/plain"
WIDGET = "application/vnd.jupyter.widget-view+json"


def executed(*sources: str) -> list[list[dict]]:
    """Execute one notebook made of ``sources`` in a fresh kernel; return each cell's outputs."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    return [cell.outputs for cell in nb.cells]


def lines_of(outputs: list[dict]) -> list[str]:
    """Every line a reader of the executed copy sees: stream text and the plain-text form of displays."""
    text = []
    for out in outputs:
        if out["output_type"] == "stream":
            text.append(out["text"])
        elif PLAIN in out.get("data", {}):
            text.append(out["data"][PLAIN])
    return [line for chunk in text for line in chunk.replace("\r", "\n").splitlines() if line.strip()]


LOOP = """
import time
from helpers.progress import tqdm
bar = tqdm(total=40, desc="steps", unit="step", mininterval=0)
for _ in range(40):
    time.sleep(0.005)
    bar.set_postfix(loss=0.5, refresh=False)
    bar.update(1)
bar.close()
for _ in tqdm(range(30), desc="rows", mininterval=0):
    time.sleep(0.002)
for _ in tqdm(range(5), desc="gone", leave=False):  # tqdm's leave=False: nothing stays
    pass
stopped = tqdm(total=10, desc="stopped", mininterval=0)
stopped.update(3)
stopped.close()
"""


def test_widgets_for_tqdm_are_installed():
    """tqdm's notebook bar needs ipywidgets; without it a kernel prints 'IProgress not found' and falls back."""
    import ipywidgets

    from tqdm.notebook import IProgress

    assert IProgress is not None and progress.widgets_available()
    assert int(ipywidgets.__version__.split(".")[0]) >= 8


def test_jupyterlab_has_the_widget_renderer():
    """JupyterLab draws widgets through the jupyterlab_widgets extension that ipywidgets brings."""
    import subprocess
    import sys

    listing = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True,
                             text=True, timeout=120, check=True)
    line = next((ln for ln in (listing.stdout + listing.stderr).splitlines()
                 if "@jupyter-widgets/jupyterlab-manager" in ln), "")
    assert "enabled" in line and "OK" in line, listing.stdout + listing.stderr


def test_a_notebook_keeps_one_line_per_bar_with_its_final_state():
    imports, loop = executed("import tqdm.auto, bert4torch", LOOP)
    assert imports == [], f"importing tqdm.auto (bert4torch does) in a kernel printed {lines_of(imports)}"
    shown = lines_of(loop)
    assert len(shown) == 3, f"expected one line per kept bar, the executed copy keeps {len(shown)}: {shown[:6]}"
    assert shown[0].startswith("steps: 100%") and "40/40" in shown[0] and "loss=0.5" in shown[0]
    assert shown[1].startswith("rows: 100%") and "30/30" in shown[1]
    assert shown[2].startswith("stopped:  30%") and "3/10" in shown[2]  # where it stopped, not 0 %
    kept = [out for out in loop if out["data"][PLAIN]]
    assert len(kept) == 3 and all(WIDGET in out["data"] for out in kept), "in a kernel with ipywidgets: widgets"


def test_without_ipywidgets_a_kernel_still_keeps_one_text_line_and_no_warning():
    _, loop = executed("import tqdm.notebook\ntqdm.notebook.IProgress = None  # as if ipywidgets were missing", LOOP)
    shown = lines_of(loop)
    assert len(shown) == 3, shown[:6]
    assert shown[0].startswith("steps: 100%") and shown[1].startswith("rows: 100%")
    assert shown[2].startswith("stopped:  30%")
    assert not any(WIDGET in out.get("data", {}) for out in loop)
    assert not any(out["output_type"] == "stream" for out in loop), "nothing on stderr: no warning, no redraws"


def test_outside_a_kernel_it_is_tqdms_text_bar():
    assert not progress.in_kernel()
    out = io.StringIO()
    with progress.tqdm(total=3, desc="here", file=out, mininterval=0) as bar:
        bar.update(3)
    assert type(bar) is TextBar and "here: 100%" in out.getvalue()
    quiet = progress.tqdm(total=3, disable=True)
    assert type(quiet) is TextBar and quiet.disable


def test_every_bar_in_the_package_comes_from_helpers_progress():
    """No module builds its own tqdm bar: the one choice above is made in helpers/progress.py only."""
    import re
    from pathlib import Path

    package = Path(progress.__file__).parent
    own = [str(p.relative_to(package)) for p in sorted(package.rglob("*.py"))
           if p.name != "progress.py" and re.search(r"^\s*(from tqdm\b|import tqdm\b)", p.read_text(), re.M)]
    assert own == [], f"these modules import tqdm themselves; use `from .progress import tqdm` instead: {own}"
    assert "from .progress import tqdm" in (package / "train.py").read_text()
