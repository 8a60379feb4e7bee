"""Test-run settings shared by the unit tests and the notebooks executed by nbval.

The notebooks read SERIES_<PARAMETER> environment variables (see helpers.config.apply_env_overrides); the
kernels nbval starts inherit this process's environment. A value already set by the caller wins, so e.g.
`SERIES_MODEL_SIZE=small pytest --nbval notebooks` tests the small model size.
"""

import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TEST_ARTIFACTS = ROOT / ".test-artifacts"

NOTEBOOK_TEST_SETTINGS = {
    "SERIES_MODEL_SIZE": "tiny",                   # 01 in about a minute on two CPU cores
    "SERIES_ARTIFACTS_DIR": str(TEST_ARTIFACTS),   # never touch the user's artifacts/
    "MPLBACKEND": "Agg",
    # 02_onnx_export: its speed study times the trained (tiny) architecture; few rounds
    "SERIES_SPEED_ROUNDS": "3",
    "SERIES_SPEED_WARMUP": "1",
    # 06_benchmark: a reduced sweep so the notebook runs in about a minute on two CPU cores
    "SERIES_BENCH_ARCH": "tiny",
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
