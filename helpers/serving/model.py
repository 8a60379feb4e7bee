"""The served model's logic: Triton Python-backend models over the series' tokenizer, backends and Classifier.

Triton loads ``<model>/<version>/model.py`` and looks for a class named ``TritonPythonModel``. The repository
writer (:mod:`helpers.serving.repository`) puts a two-line ``model.py`` there that imports one of the classes
below, so the logic is this module, tested like any other, and the files a model needs (vocabulary, ONNX
model, ``serving.json``) sit in the version folder beside it.

* :class:`SentimentModel` - raw sentences in (``TEXT``, BYTES, any batch), ``LABEL`` (BYTES) and
  ``PROBABILITIES`` (FP32) out. With dynamic batching Triton hands ``execute`` several requests at once: their
  sentences go through **one** :meth:`Classifier.predict` (length-sorted batches), which is where batching pays.
  A bad request (non-UTF-8 bytes, an empty sentence) gets its own error response; the other requests of the
  same batch are answered normally, and nothing a client sends can kill the model.
* :class:`TokenizerModel` and :class:`PostprocessModel` - the two Python steps of the standard split
  (tokenizer -> ``onnxruntime_onnx`` or ``tensorrt_plan`` model -> postprocess, joined by an ensemble).

The backend is chosen in one place, :func:`choose_backend`: on a GPU instance TensorRT (engine present and
TensorRT importable), else ONNX Runtime CUDA (onnxruntime-gpu installed), else the CPU; on the CPU ONNX
Runtime INT8, else the fused graph, else the plain export.
"""

from __future__ import annotations

import re
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..backends.base import Backend
from ..backends.classifier import Classifier, softmax
from ..errors import BackendError, InputError, SeriesError
from ..tokenizer import SentenceTokenizer

#: Names of the served tensors (the Python model and the ensemble share them).
TEXT, LABEL, PROBABILITIES = "TEXT", "LABEL", "PROBABILITIES"
INPUT_IDS, SEGMENT_IDS, LOGITS = "input_ids", "segment_ids", "logits"
#: The file in each version folder that says what the model needs.
SERVING_FILE = "serving.json"
#: Preference order of model files per device (keys of ``serving.json``'s ``files``).
CPU_ORDER: tuple[str, ...] = ("int8", "fused", "plain")
GPU_ORDER: tuple[str, ...] = ("tensorrt", "fused-fp16", "fp16")
#: Model files that ride along with another: the GPU-fused FP16 graph's twin with the 1-D mask index, which the
#: served model uses for its (always right-padded) batches through :mod:`helpers.backends.padding`.
COMPANIONS: dict[str, str] = {"fused-fp16": "fused-fp16-rightpad"}


@dataclass(frozen=True)
class BackendChoice:
    """Which model file runs on which backend, and why the better ones were passed over."""

    kind: str
    path: Path
    passed_over: tuple[str, ...] = ()
    #: the right-padded fast graph beside ``path`` (see :data:`COMPANIONS`), where present
    fast_path: Path | None = None

    def describe(self) -> str:
        why = f" ({'; '.join(self.passed_over)})" if self.passed_over else ""
        fast = f" (+ {self.fast_path.name} for right-padded batches)" if self.fast_path else ""
        return f"{self.kind}: {self.path.name}{fast}{why}"


def choose_backend(folder: Path, files: dict[str, str], device: str = "cpu") -> BackendChoice:
    """The best backend for ``device`` (``"cpu"`` or ``"gpu"``) among ``files`` (variant -> file in ``folder``)."""
    passed: list[str] = []
    present = {k: folder / v for k, v in files.items() if (folder / v).is_file()}
    if device == "gpu":
        from ..backends.onnxruntime_cuda import cuda_provider_missing_reason

        for kind in GPU_ORDER:
            if kind not in present:
                passed.append(f"{kind}: no file")
                continue
            if kind == "tensorrt":
                reason = _tensorrt_refusal()
                if reason is not None:
                    passed.append(f"tensorrt: {reason}")
                    continue
                return BackendChoice("tensorrt", present[kind], tuple(passed))
            reason = cuda_provider_missing_reason()
            if reason is None:
                return BackendChoice(f"ort-cuda-{kind}", present[kind], tuple(passed), present.get(COMPANIONS.get(kind, "")))
            passed.append(f"{kind}: {reason}")
    for kind in CPU_ORDER:
        if kind in present:
            return BackendChoice(f"ort-cpu-{kind}", present[kind], tuple(passed))
        passed.append(f"{kind}: no file")
    raise BackendError(f"serving: no model file to run in {folder} ({'; '.join(passed)}); rewrite the model repository "
                       "after running 02_onnx_export.")


def _tensorrt_refusal(device_id: int = 0) -> str | None:
    """Why no TensorRT engine can run on GPU ``device_id`` here (none installed, or a flavour whose runtime refuses
    this GPU, e.g. TensorRT-RTX on compute capability 9.0), or None."""
    from ..machine import gpu_identity
    from ..trt.compat import flavour_of, import_tensorrt, runtime_refusal

    try:
        return runtime_refusal(flavour_of(import_tensorrt()), gpu_identity(device_id).compute_capability)
    except SeriesError as exc:
        return str(exc)


def open_backend(choice: BackendChoice, *, threads: int = 0, device_id: int = 0) -> Backend:
    """Create the backend of ``choice`` (``threads``: ONNX Runtime CPU threads, 0 = every core)."""
    if choice.kind == "tensorrt":
        from ..backends.tensorrt import TensorRTBackend

        return TensorRTBackend(choice.path, gpu=device_id)
    if choice.kind.startswith("ort-cuda-"):
        from ..backends.onnxruntime_cuda import OrtCudaBackend, OrtCudaConfig

        def ort_cuda(path: Path, name: str) -> Backend:
            return OrtCudaBackend(path, OrtCudaConfig(device_id=device_id), precision="fp16", name=name)

        if choice.fast_path is None:
            return ort_cuda(choice.path, choice.kind)
        from ..backends.padding import route_by_padding

        return route_by_padding(ort_cuda(choice.path, choice.kind + " (exact)"),
                                ort_cuda(choice.fast_path, choice.kind + " (fast)"), name=choice.kind + "-rightpad")
    from ..backends.onnxruntime import OrtBackend, OrtConfig

    return OrtBackend(choice.path, OrtConfig(intra_op_threads=threads or None))


@dataclass(frozen=True)
class ServingSpec:
    """Contents of ``serving.json``: what a version folder holds and how to run it."""

    labels: tuple[str, ...]
    max_len: int
    vocab: str = "vocab.txt"
    files: dict[str, str] = field(default_factory=dict)
    batch_size: int = 32
    threads: int = 0
    pad_multiple: int = 1
    source: dict[str, Any] = field(default_factory=dict)
    #: the Classifier's cap on padding per batch (see :class:`~helpers.backends.Classifier`); None: no cap
    max_padding: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"labels": list(self.labels), "max_len": self.max_len, "vocab": self.vocab, "files": dict(self.files),
                "batch_size": self.batch_size, "threads": self.threads, "pad_multiple": self.pad_multiple,
                "max_padding": self.max_padding, "source": dict(self.source)}

    @classmethod
    def read(cls, folder: Path) -> "ServingSpec":
        path = folder / SERVING_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(tuple(data["labels"]), int(data["max_len"]), data.get("vocab", "vocab.txt"),
                       dict(data.get("files", {})), int(data.get("batch_size", 32)), int(data.get("threads", 0)),
                       int(data.get("pad_multiple", 1)), dict(data.get("source", {})),
                       None if data.get("max_padding") is None else float(data["max_padding"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BackendError(f"serving: {path} is missing or unreadable ({exc}); rewrite the model repository.") from None


def decode_texts(raw: np.ndarray, request: int = 0) -> list[str]:
    """A request's ``TEXT`` tensor (BYTES: bytes objects, any shape) as a list of sentences.

    :class:`InputError` names the request and position of a sentence that is not UTF-8, empty or blank.
    """
    texts = []
    for i, item in enumerate(np.asarray(raw, dtype=object).reshape(-1)):
        if isinstance(item, bytes):
            try:
                item = item.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"request {request}: TEXT #{i} is not valid UTF-8 (byte 0x{item[exc.start]:02x} at "
                                 f"offset {exc.start}); send sentences encoded as UTF-8.") from None
        if not isinstance(item, str):
            raise InputError(f"request {request}: TEXT #{i} is a {type(item).__name__}; TEXT must hold strings (BYTES).")
        if not item.strip():
            raise InputError(f"request {request}: TEXT #{i} is empty or whitespace only; send at least one character.")
        texts.append(item)
    if not texts:
        raise InputError(f"request {request}: TEXT holds no sentence (shape {tuple(np.shape(raw))}); send at least one.")
    return texts


@dataclass
class Answer:
    """One request's outcome: labels and probabilities, or the error to send back."""

    labels: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    error: str | None = None
    invalid_input: bool = False


class SentimentCore:
    """Everything of :class:`SentimentModel` that does not need Triton (so it is tested without a server)."""

    def __init__(self, folder: str | os.PathLike[str], device: str = "cpu", device_id: int = 0) -> None:
        self.folder = Path(folder)
        self.spec = ServingSpec.read(self.folder)
        self.tokenizer = SentenceTokenizer.from_file(self.folder / self.spec.vocab, self.spec.max_len)
        self.choice = choose_backend(self.folder, self.spec.files, device)
        self.backend = open_backend(self.choice, threads=self.spec.threads, device_id=device_id)
        self.classifier = Classifier(self.tokenizer, self.backend, list(self.spec.labels), batch_size=self.spec.batch_size,
                                     pad_multiple=self.spec.pad_multiple, max_padding=self.spec.max_padding)

    def answer(self, inputs: Sequence[np.ndarray | None]) -> list[Answer]:
        """Answer each request's ``TEXT`` (None: the request lacked it); valid ones share one ``predict``."""
        answers: list[Answer] = [Answer() for _ in inputs]
        texts: list[str] = []
        spans: list[tuple[int, int, int]] = []
        for r, raw in enumerate(inputs):
            try:
                if raw is None:
                    raise InputError(f"request {r}: no input tensor named {TEXT!r}; send the sentences as {TEXT} (BYTES).")
                decoded = decode_texts(raw, r)
            except InputError as exc:
                answers[r] = Answer(error=str(exc), invalid_input=True)
                continue
            spans.append((r, len(texts), len(texts) + len(decoded)))
            texts.extend(decoded)
        if not texts:
            return answers
        try:
            pred = self.classifier.predict(texts)
        except Exception as exc:  # a backend failure must become error responses, never a dead model
            message = f"serving: {self.choice.kind} failed on {len(texts)} sentences ({type(exc).__name__}: {exc})"
            for r, _, _ in spans:
                answers[r] = Answer(error=message)
            return answers
        labels = np.array([s.encode("utf-8") for s in pred.labels], dtype=object)
        for r, start, stop in spans:
            answers[r] = Answer(labels[start:stop].reshape(-1, 1), pred.probabilities[start:stop])
        return answers

    def close(self) -> None:
        self.backend.close()


def _pb_utils() -> Any:
    import triton_python_backend_utils as pb_utils  # only inside Triton's Python-backend stub

    return pb_utils


def _instance(args: dict[str, str]) -> tuple[Path, str, int]:
    folder = Path(args["model_repository"]) / args["model_version"]
    device = "gpu" if args.get("model_instance_kind", "CPU").upper() == "GPU" else "cpu"
    return folder, device, int(args.get("model_instance_device_id", 0) or 0)


def _error(pb_utils: Any, message: str, invalid: bool) -> Any:
    code = pb_utils.TritonError.INVALID_ARG if invalid else pb_utils.TritonError.INTERNAL
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, code))


#: The line each model instance prints into the server's log when it has chosen its backend.
BACKEND_LINE = re.compile(r"^\[(?P<instance>[^\]]+)\] backend (?P<kind>[\w-]+): (?P<detail>.*)$")


def backend_line(instance: str, choice: BackendChoice) -> str:
    """What an instance of ``instance`` prints about ``choice`` (read back by :func:`served_backends`)."""
    return f"[{instance}] backend {choice.describe()}"


def served_backends(log_text: str) -> dict[str, str]:
    """``{instance: backend kind}`` from a server log: what each model instance really runs on."""
    return {m["instance"]: m["kind"] for m in map(BACKEND_LINE.match, log_text.splitlines()) if m}


class SentimentModel:
    """Triton Python-backend model: ``TEXT`` -> ``LABEL``, ``PROBABILITIES`` (see the module docstring)."""

    def initialize(self, args: dict[str, str]) -> None:
        folder, device, device_id = _instance(args)
        self.core = SentimentCore(folder, device, device_id)
        print(backend_line(args.get("model_instance_name", "sentiment"), self.core.choice), flush=True)

    def execute(self, requests: list[Any]) -> list[Any]:
        pb_utils = _pb_utils()
        inputs = []
        for request in requests:
            tensor = pb_utils.get_input_tensor_by_name(request, TEXT)
            inputs.append(None if tensor is None else tensor.as_numpy())
        responses = []
        for answer in self.core.answer(inputs):
            if answer.error is not None:
                responses.append(_error(pb_utils, answer.error, answer.invalid_input))
            else:
                responses.append(pb_utils.InferenceResponse(output_tensors=[
                    pb_utils.Tensor(LABEL, answer.labels), pb_utils.Tensor(PROBABILITIES, answer.probabilities)]))
        return responses

    def finalize(self) -> None:
        self.core.close()


def tokenize_request(tokenizer: SentenceTokenizer, raw: np.ndarray, pad_multiple: int, request: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One request's sentences as ``input_ids`` / ``segment_ids``, padded to a multiple of ``pad_multiple``.

    In the split form the ONNX or TensorRT model's dynamic batcher joins only requests of the **same** shape;
    rounding widths up to a multiple (16: at most 8 widths for 128 tokens) lets requests of similar length batch.
    """
    rows, _ = tokenizer.encode_many(decode_texts(raw, request))
    longest = max(len(r) for r in rows)
    width = min(-(-longest // pad_multiple) * pad_multiple, tokenizer.max_len) if pad_multiple > 1 else longest
    batch = tokenizer.pad(rows, pad_to=width)
    return batch.input_ids, batch.segment_ids


class TokenizerModel:
    """Triton Python-backend model of the split form: ``TEXT`` -> ``input_ids``, ``segment_ids`` (INT32)."""

    def initialize(self, args: dict[str, str]) -> None:
        folder, _, _ = _instance(args)
        self.spec = ServingSpec.read(folder)
        self.tokenizer = SentenceTokenizer.from_file(folder / self.spec.vocab, self.spec.max_len)

    def execute(self, requests: list[Any]) -> list[Any]:
        pb_utils = _pb_utils()
        responses = []
        for r, request in enumerate(requests):
            tensor = pb_utils.get_input_tensor_by_name(request, TEXT)
            try:
                if tensor is None:
                    raise InputError(f"request {r}: no input tensor named {TEXT!r}.")
                ids, seg = tokenize_request(self.tokenizer, tensor.as_numpy(), max(1, self.spec.pad_multiple), r)
            except InputError as exc:
                responses.append(_error(pb_utils, str(exc), True))
                continue
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor(INPUT_IDS, ids), pb_utils.Tensor(SEGMENT_IDS, seg)]))
        return responses


def postprocess(logits: np.ndarray, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Logits ``[n, labels]`` -> label names (BYTES ``[n, 1]``) and probabilities (FP32 ``[n, labels]``)."""
    probabilities = softmax(np.asarray(logits, dtype=np.float32).reshape(-1, len(labels)))
    names = np.array([labels[i].encode("utf-8") for i in probabilities.argmax(axis=1)], dtype=object)
    return names.reshape(-1, 1), probabilities


class PostprocessModel:
    """Triton Python-backend model of the split form: ``logits`` -> ``LABEL``, ``PROBABILITIES``."""

    def initialize(self, args: dict[str, str]) -> None:
        folder, _, _ = _instance(args)
        self.labels = list(ServingSpec.read(folder).labels)

    def execute(self, requests: list[Any]) -> list[Any]:
        pb_utils = _pb_utils()
        responses = []
        for request in requests:
            names, probabilities = postprocess(pb_utils.get_input_tensor_by_name(request, LOGITS).as_numpy(), self.labels)
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor(LABEL, names), pb_utils.Tensor(PROBABILITIES, probabilities)]))
        return responses
