"""Start, watch and stop a Triton server process over a model repository.

``TritonServer(repository).start()`` prepares the runtime (:mod:`helpers.serving.runtime`), picks free ports
(never fixed ones, so tests and notebooks never collide), starts ``tritonserver`` in its own process group
(the Python-backend stubs are its children) and waits until ``/v2/health/ready`` answers.

``stop()`` stops it the way Triton expects: it unloads the models through the repository API (each Python
model's stub finalizes and exits), then sends SIGTERM to the server alone, which exits 0 once no model is
live. Signalling the whole process group instead would kill the stubs under the backend's feet: the server then
waits for models that never report unloaded ("Found 3 live models") until its exit timeout and exits 1. Only
what is still there after ``stop_timeout_s`` gets SIGKILL (the whole group), so nothing is left behind: no
process, no port. A working folder the server made itself (``tempfile``) is removed; pass ``workdir`` to keep its
log. Used as a context manager, or stopped at interpreter exit if the caller forgets. A server that dies or
never gets ready raises :class:`~helpers.errors.ServingError` with the end of its log.

``start(detach=True)`` leaves the server running after this process exits and writes a state file
(pid, ports, log) that :meth:`TritonServer.from_state` reads to stop it later; the CLI's start/stop use this.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import ServingError
from ..io import atomic_write_json, read_json
from .runtime import prepare_runtime


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports that are free right now (the OS picks them)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


#: The backend that runs each ``platform`` of a model config (the others name their ``backend`` themselves).
PLATFORM_BACKENDS = {"onnxruntime_onnx": "onnxruntime", "tensorrt_plan": "tensorrt"}


def loadable_models(repository: Path, backends: set[str]) -> tuple[list[str], dict[str, str]]:
    """The models of ``repository`` that a server with ``backends`` (backend folder names) can load, and the
    others with the reason: a model whose backend is missing, an ensemble with a step that cannot load."""
    from .repository import check_repository

    configs = check_repository(repository)
    left: dict[str, str] = {}
    for name, config in configs.items():
        backend = config.backend or PLATFORM_BACKENDS.get(config.platform, "")
        if config.platform != "ensemble" and backend not in backends:
            left[name] = f"no {backend or config.platform} backend in this server (NVIDIA's container has it)"
    for name, config in configs.items():
        steps = [s.model_name for s in config.ensemble_scheduling.step] if config.platform == "ensemble" else []
        if any(step in left or step not in configs for step in steps):
            left[name] = f"a step of the ensemble ({', '.join(s for s in steps if s in left)}) cannot load here"
    return [name for name in configs if name not in left], left


@dataclass(frozen=True)
class ServerConfig:
    """How to run the server. Ports 0 are chosen free at start. ``models`` empty: load every model of the
    repository this server has a backend for (:func:`loadable_models`); else load only these. Triton's explicit
    model control either way."""

    host: str = "127.0.0.1"
    http_port: int = 0
    grpc_port: int = 0
    metrics_port: int = 0
    models: tuple[str, ...] = ()
    start_timeout_s: float = 180.0
    stop_timeout_s: float = 60.0
    exit_timeout_s: int = 30
    log_verbose: int = 0
    triton_home: str | None = None
    numpy_site: str | None = None


@dataclass
class ServerState:
    """What a running server is: for the state file, and for clients (``http_url``, ``grpc_url``)."""

    pid: int
    host: str
    http_port: int
    grpc_port: int
    metrics_port: int
    repository: str
    log: str
    workdir: str
    models: list[str] = field(default_factory=list)

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"


def _get(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) counts as gone
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


class TritonServer:
    """One ``tritonserver`` process over ``repository`` (see the module docstring)."""

    def __init__(self, repository: str | os.PathLike[str], config: ServerConfig = ServerConfig(),
                 workdir: str | os.PathLike[str] | None = None) -> None:
        self.repository = Path(repository).resolve()
        self.config = config
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else None
        self.process: subprocess.Popen | None = None
        self.state: ServerState | None = None
        self.runtime_report: dict[str, str] = {}
        self.exit_code: int | None = None
        #: models of the repository this server does not load, with the reason (e.g. no backend for them here)
        self.left_out: dict[str, str] = {}

    # ------------------------------------------------------------------ start
    def command(self, backends: Path, ports: tuple[int, int, int], models: Sequence[str]) -> list[str]:
        cfg = self.config
        cmd = ["--model-repository", str(self.repository), "--backend-directory", str(backends),
               "--http-address", cfg.host, "--http-port", str(ports[0]), "--grpc-address", cfg.host,
               "--grpc-port", str(ports[1]), "--metrics-address", cfg.host, "--metrics-port", str(ports[2]),
               "--exit-timeout-secs", str(cfg.exit_timeout_s), "--log-verbose", str(cfg.log_verbose),
               "--disable-auto-complete-config", "--strict-readiness", "true"]
        # Explicit model control, so that stop() can unload the models through the repository API
        cmd += ["--model-control-mode", "explicit"] + [f"--load-model={m}" for m in models]
        return cmd

    def start(self, detach: bool = False) -> "TritonServer":
        """Start and wait until every model is ready; :class:`ServingError` with the log tail if not."""
        if self.process is not None and self.process.poll() is None:
            raise ServingError(f"triton: this server already runs (pid {self.process.pid}); stop() it first.")
        if not self.repository.is_dir():
            raise ServingError(f"triton: no model repository at {self.repository}; write it first (helpers.serving.repository).")
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="triton-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        runtime = prepare_runtime(self.workdir, self.config.triton_home, self.config.numpy_site)
        self.runtime_report = runtime.report
        cfg = self.config
        chosen = [cfg.http_port, cfg.grpc_port, cfg.metrics_port]
        picked = iter(free_ports(3, cfg.host))
        ports = tuple(p or next(picked) for p in chosen)
        if cfg.models:
            models, self.left_out = list(cfg.models), {}
        else:
            models, self.left_out = loadable_models(self.repository, {p.name for p in runtime.backends.iterdir()})
        log_path = self.workdir / "tritonserver.log"
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen([str(runtime.install.server), *self.command(runtime.backends, ports, models)],
                                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env=runtime.env, cwd=self.workdir, start_new_session=True)
        self.exit_code = None
        self.state = ServerState(self.process.pid, cfg.host, *ports, str(self.repository), str(log_path),
                                 str(self.workdir), models)
        if not detach:
            atexit.register(self.stop)
        try:
            self.wait_ready(cfg.start_timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout_s: float) -> None:
        """Poll ``/v2/health/ready`` until it answers 200; stop early if the process died."""
        assert self.state is not None
        deadline = time.monotonic() + timeout_s
        url = f"http://{self.state.http_url}/v2/health/ready"
        while time.monotonic() < deadline:
            if not self.is_alive():
                raise ServingError(f"triton: the server exited (code {self.exit_code}) before it was ready. "
                                   f"Its log ends:\n{self.log_tail()}")
            if _get(url, timeout=1.0) == 200:
                return
            failed = self.failed_models() or self.fatal_log_lines()
            if failed:
                reasons = "; ".join(f"{name}: {why}" for name, why in failed.items())
                raise ServingError(f"triton: models failed to load ({reasons}). Its log ends:\n{self.log_tail()}")
            time.sleep(0.25)
        raise ServingError(f"triton: not ready after {timeout_s:.0f} s (models still loading or failed). "
                           f"Its log ends:\n{self.log_tail()}")

    # ------------------------------------------------------------------ watch
    def is_alive(self) -> bool:
        if self.process is not None:
            code = self.process.poll()
            if code is not None:
                self.exit_code = code
            return code is None
        return self.state is not None and _alive(self.state.pid)

    def failed_models(self) -> dict[str, str]:
        """Models of the repository index that failed to load, with Triton's reason (empty while loading)."""
        index = self._post("/v2/repository/index")
        if not isinstance(index, list):
            return {}
        return {m.get("name", "?"): m.get("reason", "") for m in index
                if m.get("state") == "UNAVAILABLE" and m.get("reason") and m.get("name") in self.state.models}

    #: Log lines after which a start cannot succeed (the Python backend keeps such a model "loading" for long).
    FATAL_LOG = ("Failed to preinitialize Python stub", "failed to load '", "Address already in use",
                 "error: creating server")

    def fatal_log_lines(self) -> dict[str, str]:
        """``{"log": line}`` for the first log line that says the start has failed (empty if none)."""
        if self.state is None or not Path(self.state.log).is_file():
            return {}
        for line in Path(self.state.log).read_text(encoding="utf-8", errors="replace").splitlines():
            if any(marker in line for marker in self.FATAL_LOG):
                return {"log": line.split("] ", 1)[-1].strip()[:400]}
        return {}

    def is_ready(self) -> bool:
        return self.state is not None and _get(f"http://{self.state.http_url}/v2/health/ready") == 200

    def backends(self) -> dict[str, str]:
        """``{model instance: backend kind}`` as each instance reported it in the log (e.g. ``ort-cuda-fused-fp16``)."""
        from .model import served_backends

        if self.state is None or not Path(self.state.log).is_file():
            return {}
        return served_backends(Path(self.state.log).read_text(encoding="utf-8", errors="replace"))

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the server's log (table borders left out)."""
        if self.state is None or not Path(self.state.log).is_file():
            return "(no log)"
        text = Path(self.state.log).read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join([t for t in text if not t.startswith(("+-", "|"))][-lines:])

    def _require(self) -> ServerState:
        if self.state is None:
            raise ServingError("triton: the server was not started; call start() first.")
        return self.state

    @property
    def http_url(self) -> str:
        return self._require().http_url

    @property
    def grpc_url(self) -> str:
        return self._require().grpc_url

    @property
    def metrics_url(self) -> str:
        return self._require().metrics_url

    # ------------------------------------------------------------------ stop
    def loaded_models(self, states: tuple[str, ...] = ("READY",)) -> list[str]:
        """Models whose state in the server's repository index is one of ``states``; empty when it does not answer."""
        index = self._post("/v2/repository/index")
        return [m["name"] for m in index if m.get("state") in states] if isinstance(index, list) else []

    def _post(self, path: str, timeout: float = 2.0) -> Any:
        assert self.state is not None
        request = urllib.request.Request(f"http://{self.state.http_url}{path}", data=b"{}", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                body = response.read().decode("utf-8")
                return json.loads(body) if body else {}
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def unload_models(self, timeout_s: float = 30.0) -> list[str]:
        """Unload every loaded model through the repository API and wait until each has finished unloading
        (Triton answers at once and unloads in the background: a Python model takes seconds, its stub exiting).

        Returns the models still loaded or unloading after ``timeout_s`` (empty: all unloaded)."""
        for name in self.loaded_models():
            self._post(f"/v2/repository/models/{name}/unload", timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        live = ("READY", "LOADING", "UNLOADING")
        while (left := self.loaded_models(live)) and time.monotonic() < deadline and self.is_alive():
            time.sleep(0.1)
        return left

    def stop(self) -> int | None:
        """Stop the server cleanly (see the module docstring); safe to call twice.

        Returns the server's exit code: 0 for a clean stop (None when it was not this process's child)."""
        state = self.state
        if state is None:
            return self.exit_code
        try:
            atexit.unregister(self.stop)
        except Exception:  # atexit may already be running
            pass
        deadline = time.monotonic() + self.config.stop_timeout_s
        if self.is_alive():
            self.unload_models(timeout_s=self.config.stop_timeout_s / 2)
            self._signal(state.pid, signal.SIGTERM, group=False)
            while time.monotonic() < deadline and self.is_alive():
                time.sleep(0.1)
        self._signal(state.pid, signal.SIGKILL)  # whatever is left of the group (stubs of a server that died)
        if self.process is not None:
            try:
                self.exit_code = self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        else:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _alive(state.pid):
                time.sleep(0.1)
        for port in (state.http_port, state.grpc_port, state.metrics_port):
            deadline = time.monotonic() + 10
            while port_open(state.host, port) and time.monotonic() < deadline:
                time.sleep(0.1)
        if self._own_workdir and self.workdir is not None and self.process is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.process = None
        return self.exit_code

    def client(self, protocol: str = "http", timeout_s: float | None = None) -> Any:
        """A :class:`~helpers.serving.client.TritonClassifier` (sentences in, labels out) on this server's
        ``sentiment`` model over ``protocol``; close it (or use it in a ``with`` block) when done."""
        from .client import TritonClassifier

        return TritonClassifier(self.http_url if protocol == "http" else self.grpc_url, protocol, timeout_s=timeout_s)

    def released(self) -> bool:
        """True once the server's process is gone and none of its ports accepts a connection."""
        state = self._require()
        return not self.is_alive() and not any(port_open(state.host, p)
                                               for p in (state.http_port, state.grpc_port, state.metrics_port))

    @staticmethod
    def _signal(pid: int, sig: int, group: bool = True) -> None:
        """Signal the server's whole process group (it leads it: ``start_new_session``), or the server alone."""
        try:
            os.killpg(pid, sig) if group else os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    # ------------------------------------------------------------------ state file (CLI start/stop)
    def save_state(self, path: str | os.PathLike[str]) -> Path:
        return atomic_write_json(path, {**asdict(self._require()), "config": asdict(self.config)})

    @classmethod
    def from_state(cls, path: str | os.PathLike[str]) -> "TritonServer":
        """A handle on a server started elsewhere with ``start(detach=True)`` (to query or stop it)."""
        try:
            data = read_json(path)
            config = ServerConfig(**{**data.pop("config"), "models": tuple(data.get("models", ()))})
            server = cls(data["repository"], config, data["workdir"])
            server.state = ServerState(**data)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ServingError(f"triton: cannot read the server state file {path} ({exc}); was the server started "
                               "with `python -m helpers.serving start`?") from None
        server._own_workdir = False
        return server

    def __enter__(self) -> "TritonServer":
        return self.start() if self.state is None or not self.is_alive() else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def describe(self) -> dict[str, Any]:
        state = self._require()
        return {"pid": state.pid, "http": state.http_url, "grpc": state.grpc_url, "metrics": state.metrics_url,
                "repository": state.repository, "models": state.models, "left out": self.left_out, "log": state.log}

    def __repr__(self) -> str:
        where = f" http {self.state.http_url} grpc {self.state.grpc_url}" if self.state else ""
        return f"<TritonServer {self.repository.name}{where} {'running' if self.is_alive() else 'stopped'}>"

