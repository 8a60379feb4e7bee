"""Test-run settings shared by the unit tests and the notebooks executed by nbval.

The notebooks read SERIES_<PARAMETER> environment variables (see helpers.notebook.notebook_setup); the
kernels nbval starts inherit this process's environment. A value already set by the caller wins, so e.g.
`SERIES_MODEL_SIZE=small pytest --nbval notebooks` tests the small model size.

Every notebook cell nbval runs is also held to what a reader must see: a figure is stored as an image, never as
its `<Figure size ...>` text (which is what a notebook shows for a figure that was built but not drawn).
"""

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
TEST_ARTIFACTS = ROOT / ".test-artifacts"

NOTEBOOK_TEST_SETTINGS = {
    "SERIES_MODEL_SIZE": "tiny",                   # 01 in about a minute on two CPU cores
    "SERIES_ARTIFACTS_DIR": str(TEST_ARTIFACTS),   # never touch the user's artifacts/
    # 02_onnx_export: its speed study times the trained (tiny) architecture; few rounds
    "SERIES_SPEED_ROUNDS": "3",
    "SERIES_SPEED_WARMUP": "1",
    # 06_benchmark: a reduced sweep so the notebook runs in about a minute on two CPU cores
    "SERIES_BENCH_ITERS": "5",
    "SERIES_BENCH_WARMUP": "1",
    "SERIES_BENCH_ROUNDS": "2",
    "SERIES_BENCH_BATCHES": "1,8",
    "SERIES_BENCH_SEQS": "32,128",
    "SERIES_BENCH_TEST_LIMIT": "400",
    # 07_serve: a short load run (two concurrencies, a few dozen requests per case)
    "SERIES_SERVE_CONCURRENCIES": "1,8",
    "SERIES_SERVE_REQUESTS": "32",
    "SERIES_SERVE_WARMUP": "4",
    "SERIES_SERVE_CEILING_REQUESTS": "20",
    "SERIES_SERVE_TEST_LIMIT": "300",
}


def pytest_configure(config):
    for key, value in NOTEBOOK_TEST_SETTINGS.items():
        os.environ.setdefault(key, value)
    if Path(os.environ["SERIES_ARTIFACTS_DIR"]).resolve() == TEST_ARTIFACTS:
        shutil.rmtree(TEST_ARTIFACTS, ignore_errors=True)  # each test session starts from nothing


def figures_shown_as_text(outputs):
    """The `<Figure size ...>` texts among a cell's outputs that come without an image."""
    found = []
    for out in outputs or []:
        data = out.get("data", {}) if isinstance(out, dict) else getattr(out, "data", {}) or {}
        text = data.get("text/plain", "")
        text = "".join(text) if isinstance(text, list) else str(text)
        if "<Figure size" in text and "image/png" not in data and "image/svg+xml" not in data:
            found.append(text.strip())
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """After nbval runs a notebook cell: every figure it showed must be an image."""
    result = yield
    as_text = figures_shown_as_text(getattr(item, "test_outputs", None))
    if as_text:
        raise AssertionError(f"{item.name}: a figure is shown as text, not as an image: {as_text[0]!r} "
                             "(draw it with plt.show() or display the figure object under the inline backend)")
    return result
