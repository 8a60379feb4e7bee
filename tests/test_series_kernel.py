"""environment/series.sh runs the notebooks on a headless kernel spec whose ipykernel log is off, so a successful run
prints no kernel ERROR or WARNING line (jupyter_client interrupts an idle kernel before shutting it down, which
ipykernel can log as "KeyboardInterrupt caught in kernel"; ipykernel 7 warns about its TCP transport)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ROOT / "environment" / "jupyter"


def kernel_log(kernel_name: str, tmp_path: Path) -> str:
    """What a kernel of ``kernel_name`` writes to stderr when it gets an unknown message and is shut down."""
    jupyter_client = pytest.importorskip("jupyter_client")
    log = tmp_path / f"{kernel_name}.log"
    with log.open("w") as err:
        km = jupyter_client.KernelManager(kernel_name=kernel_name)
        km.start_kernel(stderr=err)
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=60)
            kc.shell_channel.send(kc.session.msg("no_such_request", {}))  # ipykernel logs a WARNING for it
            kc.execute_interactive("1 + 1", timeout=60)
        finally:
            kc.stop_channels()
            km.shutdown_kernel()
    time.sleep(0.2)
    return log.read_text()


def test_the_default_kernel_logs_what_the_headless_one_does_not(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", str(KERNELS))
    assert "Unknown message type" in kernel_log("python3", tmp_path)  # the check below can fail
    quiet = kernel_log("series-headless", tmp_path)
    assert "[IPKernelApp]" not in quiet and "ERROR" not in quiet, quiet


def test_series_script_runs_every_notebook_on_the_headless_kernel():
    script = (ROOT / "environment" / "series.sh").read_text()
    assert "-k series-headless" in script and "environment/jupyter" in script
    proc = subprocess.run([sys.executable, "-m", "jupyter", "kernelspec", "list"], capture_output=True, text=True,
                          env={**os.environ, "JUPYTER_PATH": str(KERNELS)}, check=True)
    assert "series-headless" in proc.stdout
