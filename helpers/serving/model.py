"""The served model's logic: Triton Python-backend models over the series' tokenizer, backends and Classifier.

Triton loads ``<model>/<version>/model.py`` and looks for a class named ``TritonPythonModel``. The repository
writer (:mod:`helpers.serving.repository`) puts a two-line ``model.py`` there that imports one of the classes
below, so the logic is this module, tested like any other, and the files a model needs (vocabulary, model
files, ``serving.json``) sit in the version folder beside it.

* :class:`SentimentModel` - raw sentences in (``TEXT``, BYTES, any batch), ``LABEL`` (BYTES) and
  ``PROBABILITIES`` (FP32) out. With dynamic batching Triton hands ``execute`` several requests at once: their
  sentences are decoded in one pass and go through **one** :meth:`Classifier.predict` (length-sorted batches),
  which is where batching pays; labels are picked for all of them at once by index. Only a batch holding a bad
  request (non-UTF-8 bytes, an empty sentence, a text with no token) takes the slow path that finds it: that
  request gets its own error response, the others of the batch are answered normally, and nothing a client
  sends can kill the model.
* :class:`TokenizerModel` and :class:`PostprocessModel` - the two Python steps of the standard split
  (tokenizer -> ``onnxruntime_onnx`` or ``tensorrt_plan`` model -> postprocess, joined by an ensemble).

The vocabulary is read through :func:`~helpers.tokenizer.load_tokenizer`, which refuses a ``vocab.txt`` whose
sha256 is not the one ``serving.json`` records (copied from the checkpoint's ``checkpoint.json``). The backend is
chosen and opened by the series' one registry (:func:`~helpers.backends.registry.best_backend`,
:func:`~helpers.backends.registry.open_backend`), on the GPU Triton gives the instance
(``model_instance_device_id``): the same choice as 06 and the bulk classify command make.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..backends.classifier import Classifier, softmax
from ..backends.registry import BackendChoice, best_backend, open_backend, spec
from ..errors import BackendError, InputError
from ..tokenizer import SentenceTokenizer, load_tokenizer

#: Names of the served tensors (the Python model and the ensemble share them).
TEXT, LABEL, PROBABILITIES = "TEXT", "LABEL", "PROBABILITIES"
INPUT_IDS, SEGMENT_IDS, LOGITS = "input_ids", "segment_ids", "logits"
#: The file in each version folder that says what the model needs.
SERVING_FILE = "serving.json"


@dataclass(frozen=True)
class ServingSpec:
    """Contents of ``serving.json``: what a version folder holds and how to run it.

    ``files`` maps model-file keys of :func:`~helpers.backends.registry.model_files` to file names in the folder;
    ``vocab_sha256`` is the vocabulary's hash as the checkpoint recorded it. ``batch_size`` and ``pad_multiple``
    None leave the Classifier's defaults for the backend's device
    (:data:`~helpers.backends.classifier.DEVICE_BATCH_SETTINGS`: on a GPU a token budget per call, widths rounded to 16)."""

    labels: tuple[str, ...]
    max_len: int
    vocab: str = "vocab.txt"
    vocab_sha256: str = ""
    files: dict[str, str] = field(default_factory=dict)
    batch_size: int | None = None
    threads: int = 0
    pad_multiple: int | None = None
    source: dict[str, Any] = field(default_factory=dict)
    #: the Classifier's cap on padding per batch (see :class:`~helpers.backends.Classifier`); None: no cap
    max_padding: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"labels": list(self.labels), "max_len": self.max_len, "vocab": self.vocab,
                "vocab_sha256": self.vocab_sha256, "files": dict(self.files), "batch_size": self.batch_size,
                "threads": self.threads, "pad_multiple": self.pad_multiple, "max_padding": self.max_padding,
                "source": dict(self.source)}

    @classmethod
    def read(cls, folder: Path) -> "ServingSpec":
        path = folder / SERVING_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            def number(key: str, kind: type) -> Any:
                return None if data.get(key) is None else kind(data[key])

            return cls(tuple(data["labels"]), int(data["max_len"]), data.get("vocab", "vocab.txt"),
                       str(data.get("vocab_sha256", "")), dict(data.get("files", {})), number("batch_size", int),
                       int(data.get("threads", 0)), number("pad_multiple", int), dict(data.get("source", {})),
                       number("max_padding", float))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BackendError(f"serving: {path} is missing or unreadable ({exc}); rewrite the model repository.") from None

    def model_files(self, folder: Path) -> dict[str, Path]:
        """The model files of the version ``folder``, keyed as the registry keys them."""
        return {key: folder / name for key, name in self.files.items()}

    def tokenizer(self, folder: Path) -> SentenceTokenizer:
        """The tokenizer of the version ``folder``'s vocabulary, refused if it is not the checkpoint's."""
        return load_tokenizer(folder / self.vocab, self.max_len, self.vocab_sha256 or None)


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


def _flat(raw: np.ndarray | None, request: int) -> np.ndarray:
    if raw is None:
        raise InputError(f"request {request}: no input tensor named {TEXT!r}; send the sentences as {TEXT} (BYTES).")
    flat = np.asarray(raw, dtype=object).reshape(-1)
    if not flat.size:
        raise InputError(f"request {request}: TEXT holds no sentence (shape {tuple(np.shape(raw))}); send at least one.")
    return flat


def decode_requests(inputs: Sequence[np.ndarray | None]) -> tuple[list[str], np.ndarray]:
    """Every request's sentences as one list, and where each request's sentences end in it (``stops``).

    One pass over all sentences of all requests; :class:`InputError` if any request is bad (the caller then
    finds which, with :func:`decode_texts` per request)."""
    flats = [_flat(raw, r) for r, raw in enumerate(inputs)]
    stops = np.cumsum([len(f) for f in flats])
    try:
        texts = [item.decode("utf-8") for item in np.concatenate(flats)]
    except (AttributeError, UnicodeDecodeError):
        raise InputError("a request holds a sentence that is not UTF-8 bytes") from None
    if not all(map(str.strip, texts)):
        raise InputError("a request holds an empty sentence")
    return texts, stops


class SentimentCore:
    """Everything of :class:`SentimentModel` that does not need Triton (so it is tested without a server)."""

    def __init__(self, folder: str | os.PathLike[str], device: str = "cpu", device_id: int = 0) -> None:
        self.folder = Path(folder)
        self.device, self.device_id = device, device_id
        self.spec = ServingSpec.read(self.folder)
        self.tokenizer = self.spec.tokenizer(self.folder)
        files = self.spec.model_files(self.folder)
        self.choice: BackendChoice = best_backend(files, device, device_id=device_id)
        self.backend = open_backend(self.choice.name, files, device_id=device_id, threads=self.spec.threads)
        # One dynamic batch is one chunk, tokenized at once; overlapping host and device work is the job of several
        # instances here (each its own process), not of a thread inside one predict call.
        self.classifier = Classifier(self.tokenizer, self.backend, list(self.spec.labels), batch_size=self.spec.batch_size,
                                     pad_multiple=self.spec.pad_multiple, max_padding=self.spec.max_padding, chunk=0,
                                     prefetch=False)
        self.label_bytes = np.array([label.encode("utf-8") for label in self.spec.labels], dtype=object)

    def describe(self) -> str:
        """The backend this model runs, and where: for the server's log and tables."""
        where = f" on GPU {self.device_id}" if spec(self.choice.name).device == "gpu" else ""
        return f"{self.choice.describe()}{where}"

    def answer(self, inputs: Sequence[np.ndarray | None]) -> list[Answer]:
        """Answer each request's ``TEXT`` (None: the request lacked it); valid ones share one ``predict``."""
        try:
            texts, stops = decode_requests(inputs)
            return self._predict(texts, stops, len(inputs))
        except InputError:
            return self._answer_one_by_one(inputs)

    def _predict(self, texts: list[str], stops: np.ndarray, total: int, find_bad_input: bool = True) -> list[Answer]:
        answers = [Answer() for _ in range(total)]
        try:
            pred = self.classifier.predict(texts)
        except InputError as exc:
            if find_bad_input:
                raise  # a text the tokenizer refuses: the caller finds its request
            return [Answer(error=f"serving: {exc}") for _ in range(total)]  # checked already: not the client's input
        except Exception as exc:  # a backend failure must become error responses, never a dead model
            message = f"serving: {self.choice.name} failed on {len(texts)} sentences ({type(exc).__name__}: {exc})"
            return [Answer(error=message) for _ in range(total)]
        labels = self.label_bytes[pred.label_ids].reshape(-1, 1)
        for r, (start, stop) in enumerate(zip(np.concatenate([[0], stops[:-1]]), stops)):
            answers[r] = Answer(labels[start:stop], pred.probabilities[start:stop])
        return answers

    def _answer_one_by_one(self, inputs: Sequence[np.ndarray | None]) -> list[Answer]:
        """The slow path for a batch holding a bad request: each request checked, the valid ones predicted together."""
        answers = [Answer() for _ in inputs]
        good: list[int] = []
        texts: list[str] = []
        stops: list[int] = []
        for r, raw in enumerate(inputs):
            try:
                decoded = decode_texts(_flat(raw, r), r)
            except InputError as exc:
                answers[r] = Answer(error=str(exc), invalid_input=True)
                continue
            try:
                self.tokenizer.encode_batch(decoded)  # refuses, e.g., a text with no token left after cleaning
            except InputError as exc:
                answers[r] = Answer(error=f"request {r}: {exc}", invalid_input=True)
                continue
            good.append(r)
            texts.extend(decoded)
            stops.append(len(texts))
        if good:
            predicted = self._predict(texts, np.asarray(stops), len(good), find_bad_input=False)
            for r, answer in zip(good, predicted):
                answers[r] = answer
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


def backend_line(instance: str, described: str) -> str:
    """What an instance of ``instance`` prints about its backend (``described``: :meth:`SentimentCore.describe`,
    read back by :func:`served_backends`)."""
    return f"[{instance}] backend {described}"


def served_backends(log_text: str) -> dict[str, str]:
    """``{instance: backend kind}`` from a server log: what each model instance really runs on."""
    return {m["instance"]: m["kind"] for m in map(BACKEND_LINE.match, log_text.splitlines()) if m}


class SentimentModel:
    """Triton Python-backend model: ``TEXT`` -> ``LABEL``, ``PROBABILITIES`` (see the module docstring)."""

    def initialize(self, args: dict[str, str]) -> None:
        folder, device, device_id = _instance(args)
        self.core = SentimentCore(folder, device, device_id)
        print(backend_line(args.get("model_instance_name", "sentiment"), self.core.describe()), flush=True)

    def execute(self, requests: list[Any]) -> list[Any]:
        pb_utils = _pb_utils()
        tensors = [pb_utils.get_input_tensor_by_name(request, TEXT) for request in requests]
        inputs = [None if tensor is None else tensor.as_numpy() for tensor in tensors]
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
        self.tokenizer = self.spec.tokenizer(folder)

    def execute(self, requests: list[Any]) -> list[Any]:
        pb_utils = _pb_utils()
        responses = []
        for r, request in enumerate(requests):
            tensor = pb_utils.get_input_tensor_by_name(request, TEXT)
            try:
                if tensor is None:
                    raise InputError(f"request {r}: no input tensor named {TEXT!r}.")
                ids, seg = tokenize_request(self.tokenizer, tensor.as_numpy(), self.spec.pad_multiple or 1, r)
            except InputError as exc:
                responses.append(_error(pb_utils, str(exc), True))
                continue
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor(INPUT_IDS, ids), pb_utils.Tensor(SEGMENT_IDS, seg)]))
        return responses


def postprocess(logits: np.ndarray, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Logits ``[n, labels]`` -> label names (BYTES ``[n, 1]``) and probabilities (FP32 ``[n, labels]``)."""
    probabilities = softmax(np.asarray(logits, dtype=np.float32).reshape(-1, len(labels)))
    names = np.array([label.encode("utf-8") for label in labels], dtype=object)[probabilities.argmax(axis=1)]
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
