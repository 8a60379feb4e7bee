"""Command line: write a model repository, start/stop a Triton server, measure it, without a notebook.

  python -m helpers.serving check                                   # is the Triton runtime usable here?
  python -m helpers.serving write --artifacts artifacts              # -> artifacts/serving/model_repository
  python -m helpers.serving serve --artifacts artifacts              # foreground until Ctrl-C
  python -m helpers.serving start --artifacts artifacts              # background; state in artifacts/serving/server.json
  python -m helpers.serving stop --artifacts artifacts
  python -m helpers.serving measure --artifacts artifacts --out results/cpu-xeon/serving

On a GPU machine `--device auto` (the default) writes a GPU repository: one instance on every visible GPU
(`--gpus 0,1` to choose), dynamic batching for throughput. Its defaults (GPU_BATCHING in
helpers/serving/repository.py) are to be confirmed there; sweep a few settings and keep the best, e.g.
  for d in 100 500 2000; do python -m helpers.serving measure --delay-us $d --out results/h200/serving-delay-$d; done
with --preferred 32,64 / 64,128,256 and --instances 1 / 2 likewise. `measure` runs NVIDIA's perf_analyzer beside
the project's load tool where it can run (glibc >= 2.38), and says why not where it cannot.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from ..config import ArtifactPaths
from ..errors import SeriesError
from .repository import RepositoryConfig, write_repository
from .server import ServerConfig, TritonServer


def _repository(args: argparse.Namespace) -> Path:
    return Path(args.repository) if args.repository else ArtifactPaths.at(args.artifacts).root / "serving" / "model_repository"


def _state(args: argparse.Namespace) -> Path:
    return ArtifactPaths.at(args.artifacts).root / "serving" / "server.json"


def _server_config(args: argparse.Namespace) -> ServerConfig:
    models = tuple(m for m in args.models.split(",") if m)
    return ServerConfig(host=args.host, http_port=args.http_port, grpc_port=args.grpc_port, metrics_port=args.metrics_port,
                        models=models, triton_home=args.triton_home)


def _max_padding(text: str) -> float | None:
    """``--max-padding``: a share from 0 up to 1, or ``none`` for no cap."""
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"give a share from 0 up to 1 (e.g. 0.2) or 'none', not {text!r}") from None


def _config(args: argparse.Namespace) -> RepositoryConfig:
    return RepositoryConfig.for_device(args.device, preferred=args.preferred, delay_us=args.delay_us,
                                       instances=args.instances, threads=args.threads, gpus=args.gpus,
                                       max_padding=args.max_padding)


def _write(args: argparse.Namespace) -> Path:
    repo = write_repository(_repository(args), ArtifactPaths.at(args.artifacts), _config(args))
    print(f"model repository: {repo.root} (models {', '.join(repo.models)}; left out: {repo.skipped or 'none'})")
    return repo.root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.serving", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["check", "write", "serve", "start", "stop", "status", "measure"])
    parser.add_argument("--artifacts", default="artifacts", help="artifacts folder of 01/02 (default: artifacts)")
    parser.add_argument("--repository", help="model repository (default: <artifacts>/serving/model_repository)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"],
                        help="instance kind and model files (auto: gpu where a GPU is visible)")
    parser.add_argument("--preferred", default="",
                        help="dynamic batching: preferred batch sizes (default: CPU 4,8,16; GPU 64,128,256)")
    parser.add_argument("--delay-us", type=int, default=None,
                        help="dynamic batching: max queue delay in microseconds (default: CPU 2000; GPU 500)")
    parser.add_argument("--instances", type=int, default=0,
                        help="model instances (stub processes), on each GPU on a GPU; 0: one")
    parser.add_argument("--gpus", default="", help="GPU indices for the instances, e.g. 0,1 (default: every visible GPU)")
    parser.add_argument("--threads", type=int, default=0,
                        help="ONNX Runtime CPU threads per instance; 0: the cores shared among the instances (CPU)")
    parser.add_argument("--max-padding", type=_max_padding, default=RepositoryConfig().max_padding,
                        help="on a CPU, the largest share of padding in one Classifier call, or 'none' (default: %(default)s)")
    parser.add_argument("--models", default="",
                        help="models to load, comma-separated (default: every model this server has a backend for)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--http-port", type=int, default=0, help="0: a free port")
    parser.add_argument("--grpc-port", type=int, default=0)
    parser.add_argument("--metrics-port", type=int, default=0)
    parser.add_argument("--triton-home", help="folder with setup.sh's server/ (default: <venv>/triton)")
    parser.add_argument("--out", default="", help="measure: folder for serving.json and the plot")
    parser.add_argument("--concurrencies", default="",
                        help="closed-loop clients per case (default: CPU 1,2,4,8,16,32; GPU 1,4,16,64,128)")
    parser.add_argument("--requests", type=int, default=400, help="measure: requests per case (at least 10 per client)")
    parser.add_argument("--note", default="", help="measure: a note stored with the results (e.g. 'busy machine')")
    parser.add_argument("--sentences", type=int, default=0, help="measure: test sentences sent (0: the whole test split)")
    parser.add_argument("--perf-ms", type=int, default=3000, help="measure: perf_analyzer's measurement window (ms)")
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            import tempfile

            from .runtime import prepare_runtime

            with tempfile.TemporaryDirectory() as tmp:
                report = prepare_runtime(tmp, args.triton_home).report
            print(json.dumps(report, indent=2))
        elif args.command == "write":
            _write(args)
        elif args.command in ("serve", "start"):
            repo = _repository(args) if _repository(args).is_dir() else _write(args)
            workdir = ArtifactPaths.at(args.artifacts).root / "serving" / "server" if args.command == "start" else None
            server = TritonServer(repo, _server_config(args), workdir).start(detach=args.command == "start")
            print(json.dumps(server.describe(), indent=2))
            if args.command == "start":
                server.save_state(_state(args))
                print(f"started in the background; stop with: python -m helpers.serving stop --artifacts {args.artifacts}")
            else:
                done = threading.Event()
                signal.signal(signal.SIGTERM, lambda *_: done.set())
                print("serving; Ctrl-C stops the server")
                try:
                    while not done.wait(1.0) and server.is_alive():
                        pass
                except KeyboardInterrupt:
                    pass
                print(f"stopped (exit code {server.stop()})")
        elif args.command in ("stop", "status"):
            server = TritonServer.from_state(_state(args))
            alive = server.is_alive()
            if args.command == "status":
                print(json.dumps({**server.describe(), "alive": alive, "ready": alive and server.is_ready()}, indent=2))
            else:
                server.stop()
                _state(args).unlink(missing_ok=True)
                print(f"stopped the server of {server.repository}" if alive else "the server was not running")
        elif args.command == "measure":
            from .measure import SweepConfig, run_measurement

            device = _config(args).device
            sweep = SweepConfig.for_device(device, concurrencies=args.concurrencies, perf_ms=args.perf_ms,
                                           requests=args.requests)
            out = Path(args.out) if args.out else ArtifactPaths.at(args.artifacts).root / "serving"
            repo = _repository(args) if args.repository else _write(args)
            paths = run_measurement(ArtifactPaths.at(args.artifacts), repo, sweep, out, server_config=_server_config(args),
                                    note=args.note, texts_limit=args.sentences, device=device)
            print(json.dumps({k: str(v) for k, v in paths.items()}, indent=2))
    except SeriesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
