"""A Triton model repository for the classifier: ``config.pbtxt`` rendering and the repository writer.

The repository is the unit users copy into NVIDIA's Triton container (``tritonserver --model-repository``):

```
model_repository/
  sentiment/            Python backend: TEXT -> LABEL, PROBABILITIES (tokenizer + best backend inside)
    config.pbtxt        max_batch_size, dims, data types, dynamic_batching, instance_group
    1/model.py          two lines: the logic is helpers.serving.model.SentimentModel
    1/vocab.txt, 1/model.int8.onnx (or the GPU file), 1/serving.json
  sentiment_nobatch/    the same model without dynamic batching (measured beside it in 07)
  tokenizer/            the split form, step 1 (Python backend): TEXT -> input_ids, segment_ids
  classifier_onnx/      step 2 on the container's ONNX Runtime backend (platform onnxruntime_onnx)
  classifier_trt/       or on its TensorRT backend (platform tensorrt_plan), where 04 built an engine
  postprocess/          step 3 (Python backend): logits -> LABEL, PROBABILITIES
  sentiment_onnx/       ensemble: tokenizer -> classifier_onnx -> postprocess (sentiment_trt likewise)
```

The bundled server here has only the Python backend, so ``sentiment``, ``sentiment_nobatch``, ``tokenizer`` and
``postprocess`` load here (:func:`~helpers.serving.server.loadable_models` finds them); ``classifier_onnx``,
``classifier_trt`` and the ensembles over them need the container's ONNX Runtime and TensorRT backends. Every
``config.pbtxt`` is parsed with Triton's own model-config protobuf (:func:`parse_config`), so a misspelt field
fails at once.

**Dynamic batching.** Triton queues requests for up to ``max_queue_delay_microseconds`` and hands the model
a batch as soon as one of ``preferred_batch_size`` is reached (or the delay runs out). The delay is an upper
bound on what batching adds to a lone request's latency; the preferred sizes are the sizes at which the
backend's cost per sentence has mostly flattened out. A CPU and a GPU want different settings
(:data:`CPU_BATCHING`, :data:`GPU_BATCHING`): every knob is an option of :meth:`RepositoryConfig.for_device`, of
``python -m helpers.serving write`` and ``measure`` (``--preferred``, ``--delay-us``, ``--instances``, ``--gpus``)
and of notebook 07, so a GPU machine can sweep a few settings quickly and keep the best.

**GPUs.** On a GPU the instance group names the GPUs (``instance_group [ { count: N kind: KIND_GPU gpus: [ 0, 1 ]
} ]``: N instances on *each* listed GPU; by default one on every GPU visible when the repository is written), and
each instance's Python model places its backend on the GPU Triton gives it (``model_instance_device_id``).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..backends.classifier import checked_max_padding
from ..backends.registry import CPU_ORDER, GPU_ORDER, best_backend, model_files, spec
from ..errors import ConfigError, MissingArtifactError
from ..io import atomic_dir, atomic_write_json, atomic_write_text
from ..tokenizer import load_tokenizer
from .model import INPUT_IDS, LABEL, LOGITS, PROBABILITIES, SEGMENT_IDS, SERVING_FILE, TEXT, ServingSpec



@dataclass(frozen=True)
class Batching:
    """Triton's dynamic batcher for one model (see :data:`CPU_BATCHING` and :data:`GPU_BATCHING` for the
    defaults and why). ``enabled=False`` writes no ``dynamic_batching`` block: each request runs alone."""

    enabled: bool = True
    preferred: tuple[int, ...] = (4, 8, 16)
    max_queue_delay_us: int = 2000

    def __post_init__(self) -> None:
        if self.max_queue_delay_us < 0 or any(int(b) < 1 for b in self.preferred):
            raise ConfigError(f"batching needs preferred sizes >= 1 and a delay >= 0 us, got {self}.")

    def render(self, max_batch_size: int) -> str:
        if not self.enabled:
            return ""
        sizes = sorted({int(b) for b in self.preferred if int(b) <= max_batch_size})
        preferred = f"\n  preferred_batch_size: [ {', '.join(map(str, sizes))} ]" if sizes else ""
        return f"dynamic_batching {{{preferred}\n  max_queue_delay_microseconds: {int(self.max_queue_delay_us)}\n}}\n"


#: A 2-core CPU and a small BERT (measured): a 2 ms delay keeps the worst extra wait below what one sentence
#: costs on the backend, so a lone request loses little; at 4, 8 and 16 sentences ONNX Runtime's cost per
#: sentence has mostly flattened on two cores (larger batches only add waiting).
CPU_BATCHING = Batching(True, (4, 8, 16), 2000)
#: A GPU, for throughput (one sentence per request, 64 or more clients): a call's cost grows far more slowly than
#: its batch (BERT-base fp16 at sequence 128 on an H100: 0.63 ms for 1 sentence, 2.83 ms for 32), so batches
#: should be large, and the delay short - while an instance computes one batch the next one fills anyway; the
#: delay matters only when traffic is light. Not measured for serving yet: sweep --preferred, --delay-us and
#: --instances on the GPU to confirm them (docs/serving.md).
GPU_BATCHING = Batching(True, (64, 128, 256), 500)


@dataclass(frozen=True)
class RepositoryConfig:
    """What to write. ``device``: ``cpu`` or ``gpu`` (instance kind and which model files go in).

    ``max_batch_size`` is the most sentences one request may carry (and the most a dynamic batch may join):
    1024 lets a client send 1,000 sentences at once; the Classifier inside still runs them in length-sorted
    batches, formed by its defaults for the backend's device (on a GPU a token budget per call), or of at most
    ``classifier_batch`` sentences where that is given. ``instances`` stub processes serve in parallel (on a
    GPU: that many on each of ``gpus``; no ``gpus`` lets Triton use every GPU of the serving machine);
    ``threads`` are ONNX Runtime's CPU threads per instance (0: every core). ``max_padding`` caps the share of
    padding in each of the Classifier's batches on a CPU (None: no cap): sentences that arrive together in one
    dynamic batch are not sorted by length, and ONNX Runtime on a CPU pays for every padded position, so without
    a cap a few long sentences make every short one in their batch pay their width (measured on the 2-core Xeon,
    small model, INT8, batches of 8 random test sentences: 424 sentences/s uncapped, 662/s with 0.2, 559/s one
    by one). On a GPU a call costs more than its padding and batches stay whole. ``pad_multiple`` is the split
    form's tokenizer's width rounding. :meth:`for_device` fills in a device's defaults.
    """

    name: str = "sentiment"
    device: str = "cpu"
    max_batch_size: int = 1024
    batching: Batching = CPU_BATCHING
    instances: int = 1
    gpus: tuple[int, ...] = ()
    threads: int = 0
    classifier_batch: int | None = None
    unbatched_twin: bool = True
    split: bool = True
    split_max_batch: int = 64
    pad_multiple: int = 16
    max_padding: float | None = 0.2

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "gpu"):
            raise ConfigError(f"repository device must be 'cpu' or 'gpu', got {self.device!r}.")
        if min(self.max_batch_size, self.instances, self.classifier_batch or 1, self.split_max_batch, self.pad_multiple) < 1:
            raise ConfigError(f"repository sizes must be >= 1, got {self}.")
        if self.gpus and (self.device != "gpu" or min(self.gpus) < 0 or len(set(self.gpus)) != len(self.gpus)):
            raise ConfigError(f"gpus {list(self.gpus)}: give distinct GPU indices >= 0, and only for device 'gpu'.")
        checked_max_padding(self.max_padding, "repository")

    @property
    def kind(self) -> str:
        return "KIND_GPU" if self.device == "gpu" else "KIND_CPU"

    @classmethod
    def for_device(cls, device: str = "auto", *, preferred: str | Sequence[int] = "", delay_us: int | None = None,
                   instances: int = 0, threads: int = 0, gpus: str | Sequence[int] = "",
                   **fields: Any) -> "RepositoryConfig":
        """The repository for ``device`` (``cpu``, ``gpu``, or ``auto``: ``gpu`` where a GPU is visible), with
        that device's defaults for whatever is left empty: ``preferred`` sizes (``"64,128"`` or a sequence) and
        ``delay_us`` of dynamic batching (None or negative: the default), ``instances`` (0: one, on each GPU), ``threads`` (see
        :func:`instances_and_threads`), ``gpus`` (``"0,1"`` or a sequence; empty: every GPU visible now).
        Other ``fields`` of the dataclass are passed on."""
        from ..machine import visible_gpus

        if device == "auto":
            device = "gpu" if visible_gpus() else "cpu"
        base = GPU_BATCHING if device == "gpu" else CPU_BATCHING
        sizes = parse_ints(preferred, "preferred") if isinstance(preferred, str) else tuple(preferred)
        delay = base.max_queue_delay_us if delay_us is None or delay_us < 0 else delay_us
        batching = Batching(True, sizes or base.preferred, delay)
        instances, threads = instances_and_threads(device, instances, threads)
        chosen: tuple[int, ...] = ()
        if device == "gpu":
            chosen = parse_ints(gpus, "gpus") if isinstance(gpus, str) else tuple(gpus)
            chosen = chosen or tuple(g.index for g in visible_gpus())
        return cls(device=device, batching=batching, instances=instances, threads=threads, gpus=chosen, **fields)


def parse_ints(text: str, what: str) -> tuple[int, ...]:
    """``"64,128"`` -> ``(64, 128)`` (empty: ``()``); :class:`ConfigError` naming ``what`` for anything else."""
    try:
        return tuple(int(x) for x in str(text).replace(" ", "").split(",") if x)
    except ValueError:
        raise ConfigError(f"{what}: give whole numbers separated by commas (e.g. 0,1), not {text!r}.") from None


def instances_and_threads(device: str, instances: int = 0, threads: int = 0, cpus: int | None = None) -> tuple[int, int]:
    """Model instances and ONNX Runtime CPU threads per instance; 0 picks the default.

    Default: one instance (on a GPU: one on each GPU). On a CPU its threads (and those of any number of
    instances given) share the usable cores among the instances. Measured on the 2-core Xeon (small model,
    INT8, padding cap 0.2, three runs of each, interleaved): two single-threaded instances served about 1.2x
    the sentences per second of one two-threaded instance at concurrency 16 with batching (551-630 vs 450-509),
    but a lone request took about 1 ms longer (p50 3.4-3.7 vs 2.4-2.8 ms without batching), and with two
    instances dynamic batching no longer beat no batching. One instance is the default for latency;
    ``instances=cores`` for throughput. On a GPU ``threads`` 0 leaves ONNX Runtime's own default for its
    CPU-side work; whether two instances per GPU feed it better (one tokenizes while the other computes) is
    for the GPU machine's sweep to say.
    """
    if instances < 0 or threads < 0:
        raise ConfigError(f"instances and threads must be >= 0 (0: the default), got {instances} and {threads}.")
    instances = instances or 1
    if device == "gpu":
        return instances, threads
    from ..machine import usable_cpus

    return instances, threads or max(1, (cpus or usable_cpus()) // instances)


def _tensor(name: str, dtype: str, dims: Sequence[int]) -> str:
    return f"  {{ name: \"{name}\" data_type: {dtype} dims: [ {', '.join(map(str, dims))} ] }}"


def _io(inputs: Sequence[str], outputs: Sequence[str]) -> str:
    return "input [\n" + ",\n".join(inputs) + "\n]\noutput [\n" + ",\n".join(outputs) + "\n]\n"


def _instances(count: int, kind: str, profiles: Sequence[int] = (), gpus: Sequence[int] = ()) -> str:
    quoted = ", ".join('"%d"' % p for p in profiles)
    prof = f" profile: [ {quoted} ]" if profiles else ""
    where = f" gpus: [ {', '.join(map(str, gpus))} ]" if gpus and kind == "KIND_GPU" else ""
    return f"instance_group [ {{ count: {count} kind: {kind}{where}{prof} }} ]\n"


def python_model_config(name: str, config: RepositoryConfig, num_labels: int, batching: Batching | None = None) -> str:
    """``config.pbtxt`` of the all-in-one Python-backend model ``name``."""
    batching = config.batching if batching is None else batching
    return (f"name: \"{name}\"\nbackend: \"python\"\nmax_batch_size: {config.max_batch_size}\n"
            + _io([_tensor(TEXT, "TYPE_STRING", [1])],
                  [_tensor(LABEL, "TYPE_STRING", [1]), _tensor(PROBABILITIES, "TYPE_FP32", [num_labels])])
            + batching.render(config.max_batch_size) + _instances(config.instances, config.kind, gpus=config.gpus))


def tokenizer_config(config: RepositoryConfig) -> str:
    return ("name: \"tokenizer\"\nbackend: \"python\"\n" f"max_batch_size: {config.split_max_batch}\n"
            + _io([_tensor(TEXT, "TYPE_STRING", [1])], [_tensor(INPUT_IDS, "TYPE_INT32", [-1]), _tensor(SEGMENT_IDS, "TYPE_INT32", [-1])])
            + config.batching.render(config.split_max_batch) + _instances(config.instances, "KIND_CPU"))


def postprocess_config(config: RepositoryConfig, num_labels: int) -> str:
    return ("name: \"postprocess\"\nbackend: \"python\"\n" f"max_batch_size: {config.split_max_batch}\n"
            + _io([_tensor(LOGITS, "TYPE_FP32", [num_labels])],
                  [_tensor(LABEL, "TYPE_STRING", [1]), _tensor(PROBABILITIES, "TYPE_FP32", [num_labels])])
            + config.batching.render(config.split_max_batch) + _instances(config.instances, "KIND_CPU"))


def onnx_config(config: RepositoryConfig, num_labels: int, threads: int = 0) -> str:
    """``classifier_onnx``: the exported graph on the container's ONNX Runtime backend."""
    params = ""
    if threads:
        params = ("parameters { key: \"intra_op_thread_count\" value: { string_value: \"%d\" } }\n" % threads)
    return ("name: \"classifier_onnx\"\nplatform: \"onnxruntime_onnx\"\n" f"max_batch_size: {config.split_max_batch}\n"
            + _io([_tensor(INPUT_IDS, "TYPE_INT32", [-1]), _tensor(SEGMENT_IDS, "TYPE_INT32", [-1])],
                  [_tensor(LOGITS, "TYPE_FP32", [num_labels])])
            + config.batching.render(config.split_max_batch) + _instances(config.instances, config.kind, gpus=config.gpus)
            + params)


def trt_config(profile_set: Any, num_labels: int, config: RepositoryConfig) -> str:
    """``classifier_trt``: 04's engine on the container's TensorRT backend.

    ``profile_set`` is the engine's :class:`~helpers.trt.profiles.ProfileSet`: ``max_batch_size`` is its largest
    batch, and the instance may use every profile (Triton picks the one that fits each batch's shape).
    """
    max_batch = min(int(profile_set.max_batch), config.split_max_batch)
    return ("name: \"classifier_trt\"\nplatform: \"tensorrt_plan\"\n" f"max_batch_size: {max_batch}\n"
            + _io([_tensor(INPUT_IDS, "TYPE_INT32", [-1]), _tensor(SEGMENT_IDS, "TYPE_INT32", [-1])],
                  [_tensor(LOGITS, "TYPE_FP32", [num_labels])])
            + config.batching.render(max_batch)
            + _instances(config.instances, "KIND_GPU", range(len(profile_set.profiles)), config.gpus))


def ensemble_config(name: str, classifier: str, num_labels: int, max_batch: int) -> str:
    """The ensemble ``name``: tokenizer -> ``classifier`` -> postprocess, with the Python model's interface."""
    def step(model: str, inputs: dict[str, str], outputs: dict[str, str]) -> str:
        maps = "".join(f"\n      input_map {{ key: \"{k}\" value: \"{v}\" }}" for k, v in inputs.items())
        maps += "".join(f"\n      output_map {{ key: \"{k}\" value: \"{v}\" }}" for k, v in outputs.items())
        return f"    {{\n      model_name: \"{model}\"\n      model_version: -1{maps}\n    }}"

    steps = [step("tokenizer", {TEXT: TEXT}, {INPUT_IDS: "ids", SEGMENT_IDS: "segments"}),
             step(classifier, {INPUT_IDS: "ids", SEGMENT_IDS: "segments"}, {LOGITS: "scores"}),
             step("postprocess", {LOGITS: "scores"}, {LABEL: LABEL, PROBABILITIES: PROBABILITIES})]
    return (f"name: \"{name}\"\nplatform: \"ensemble\"\nmax_batch_size: {max_batch}\n"
            + _io([_tensor(TEXT, "TYPE_STRING", [1])],
                  [_tensor(LABEL, "TYPE_STRING", [1]), _tensor(PROBABILITIES, "TYPE_FP32", [num_labels])])
            + "ensemble_scheduling {\n  step [\n" + ",\n".join(steps) + "\n  ]\n}\n")


def parse_config(text: str) -> Any:
    """Parse ``config.pbtxt`` text into Triton's ``ModelConfig`` protobuf (raises on any unknown field)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(text, model_config_pb2.ModelConfig())


def model_py(class_name: str) -> str:
    return ('"""Triton Python-backend entry point. The logic is helpers.serving.model '
            f'({class_name}); install the series\' helpers package in the serving image."""\n\n'
            f"from helpers.serving.model import {class_name} as TritonPythonModel  # noqa: F401\n")


@dataclass
class Sources:
    """What the repository is made from: 01's checkpoint (vocabulary, labels, ``max_len``, the vocabulary's sha256
    from ``checkpoint.json``) and the model files of 02 and 04 (keys of
    :func:`~helpers.backends.registry.model_files`)."""

    vocab: Path
    vocab_sha256: str
    labels: list[str]
    max_len: int
    files: dict[str, Path]
    profile_set: Any = None
    fingerprint: str = ""

    @classmethod
    def from_artifacts(cls, paths: Any) -> "Sources":
        """From an :class:`~helpers.config.ArtifactPaths` (checkpoint metadata read without loading weights)."""
        from ..io import read_json
        from ..model import META_FILE, VOCAB_FILE

        meta_file = paths.checkpoint / META_FILE
        if not meta_file.is_file():
            raise MissingArtifactError(f"serving: no checkpoint in {paths.checkpoint}; run 01_train first.")
        meta = read_json(meta_file)
        files = model_files(paths.onnx, paths.trt)
        if not any(k in files for k in (key for name in CPU_ORDER for key in spec(name).files)):
            raise MissingArtifactError(f"serving: no ONNX model in {paths.onnx}; run 02_onnx_export first.")
        profile_set = None
        if "engine-fp16" in files:
            from ..trt.metadata import read_metadata

            profile_set = read_metadata(files["engine-fp16"]).profile_set()
        recorded = meta.get("sha256") if isinstance(meta.get("sha256"), dict) else {}
        return cls(paths.checkpoint / VOCAB_FILE, str(recorded.get(VOCAB_FILE, "")), list(meta["labels"]),
                   int(meta["max_len"]), files, profile_set, str(meta.get("fingerprint", "")))


@dataclass
class Repository:
    """A written repository: its folder, the models in it, and the models left out with the reason."""

    root: Path
    models: list[str]
    skipped: dict[str, str] = field(default_factory=dict)

    def config_path(self, model: str) -> Path:
        return self.root / model / "config.pbtxt"


def _version_folder(folder: Path, sources: Sources, files: dict[str, Path], config: RepositoryConfig,
                    class_name: str, pad_multiple: int | None, max_padding: float | None = None) -> None:
    folder.mkdir(parents=True)
    shutil.copy2(sources.vocab, folder / "vocab.txt")
    for path in files.values():
        shutil.copy2(path, folder / path.name)
    spec_ = ServingSpec(tuple(sources.labels), sources.max_len, "vocab.txt", sources.vocab_sha256,
                        {k: p.name for k, p in files.items()}, config.classifier_batch, config.threads, pad_multiple,
                        {"checkpoint_fingerprint": sources.fingerprint}, max_padding)
    atomic_write_json(folder / SERVING_FILE, spec_.to_dict())
    atomic_write_text(folder / "model.py", model_py(class_name))


def served_files(files: dict[str, Path], device: str) -> dict[str, Path]:
    """The model files the Python model gets. On a GPU, the files of every GPU backend of the registry that are
    present (the model chooses when it loads, since whether e.g. a TensorRT engine runs depends on the serving
    machine) with the ONNX file each engine was built from; on both, the files of the CPU's best backend, the
    fallback."""
    keep: set[str] = set()
    if device == "gpu":
        for name in GPU_ORDER:
            needed = spec(name).files
            if all(k in files for k in needed):
                keep.update(needed)
                keep.update(_engine_source(files, k) for k in needed if k.startswith("engine-"))
    cpu = best_backend({k: p for k, p in files.items() if not k.startswith("engine-")}, "cpu")
    keep.update(k for k, p in files.items() if p in cpu.files)
    keep.discard("")
    return {k: files[k] for k in files if k in keep}


def _engine_source(files: dict[str, Path], engine_key: str) -> str:
    """The key of the ONNX file the engine ``engine_key`` was built from (its sidecar names it), or ""."""
    from ..trt.metadata import read_metadata

    built_from = read_metadata(files[engine_key]).onnx_file
    return next((k for k, p in files.items() if not k.startswith("engine-") and p.name == built_from), "")


def write_repository(dest: str | os.PathLike[str], sources: Any, config: RepositoryConfig = RepositoryConfig()) -> Repository:
    """Write the model repository to ``dest`` from ``sources`` (a :class:`Sources`, or the
    :class:`~helpers.config.ArtifactPaths` of 01 and 02), replacing an older one only once the new one is
    complete. The vocabulary is checked against the sha256 the checkpoint recorded before anything is copied:
    a changed ``vocab.txt`` is refused, and the repository stays as it was."""
    sources = sources if isinstance(sources, Sources) else Sources.from_artifacts(sources)
    load_tokenizer(sources.vocab, sources.max_len, sources.vocab_sha256 or None)
    dest = Path(dest)
    n = len(sources.labels)
    files = served_files(sources.files, config.device)
    models: list[str] = []
    skipped: dict[str, str] = {}
    new = dest.with_name(dest.name + ".new")
    shutil.rmtree(new, ignore_errors=True)
    with atomic_dir(new) as tmp:
        # The all-in-one model's Classifier batches as its device's defaults say; on a CPU it also caps each batch's
        # padding (see RepositoryConfig)
        own_max_padding = config.max_padding if config.device == "cpu" else None

        def add(name: str, text: str, version: dict[str, Path] | None = None, class_name: str = "",
                pad: int | None = None, max_padding: float | None = None) -> None:
            parse_config(text)  # never write a config Triton would refuse
            (tmp / name).mkdir()
            atomic_write_text(tmp / name / "config.pbtxt", text)
            if version is not None:
                _version_folder(tmp / name / "1", sources, version, config, class_name, pad, max_padding)
            models.append(name)

        add(config.name, python_model_config(config.name, config, n), files, "SentimentModel", None, own_max_padding)
        if config.unbatched_twin:
            add(f"{config.name}_nobatch", python_model_config(f"{config.name}_nobatch", config, n, Batching(enabled=False)),
                files, "SentimentModel", None, own_max_padding)
        if config.split:
            add("tokenizer", tokenizer_config(config), {}, "TokenizerModel", config.pad_multiple)
            add("postprocess", postprocess_config(config, n), {}, "PostprocessModel")
            onnx_kind = next((k for k in (("fused-fp16", "fp16") if config.device == "gpu" else ())
                              + ("int8", "fused", "plain") if k in sources.files), None)
            if onnx_kind is not None:
                add("classifier_onnx", onnx_config(config, n, config.threads))
                (tmp / "classifier_onnx" / "1").mkdir()
                shutil.copy2(sources.files[onnx_kind], tmp / "classifier_onnx" / "1" / "model.onnx")
                add(f"{config.name}_onnx", ensemble_config(f"{config.name}_onnx", "classifier_onnx", n, config.split_max_batch))
            engine = sources.files.get("engine-fp16")
            if engine is not None and sources.profile_set is not None:
                add("classifier_trt", trt_config(sources.profile_set, n, config))
                (tmp / "classifier_trt" / "1").mkdir()
                # Triton's TensorRT backend (platform "tensorrt_plan") loads its engine from a file that must be
                # named model.plan ("plan" is Triton's word for a serialized engine); everywhere else it is .engine.
                shutil.copy2(engine, tmp / "classifier_trt" / "1" / "model.plan")
                trt_batch = min(int(sources.profile_set.max_batch), config.split_max_batch)
                add(f"{config.name}_trt", ensemble_config(f"{config.name}_trt", "classifier_trt", n, trt_batch))
            else:
                skipped["classifier_trt"] = "no TensorRT engine from 04_build_engine (it needs a GPU with TensorRT)"
    if dest.exists():
        old = dest.with_name(dest.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dest, old)
        os.replace(new, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, dest)
    return Repository(dest, models, skipped)


def check_repository(root: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse every ``config.pbtxt`` under ``root``; each model's name must match its folder."""
    configs = {}
    for path in sorted(Path(root).glob("*/config.pbtxt")):
        parsed = parse_config(path.read_text(encoding="utf-8"))
        if parsed.name != path.parent.name:
            raise ConfigError(f"{path}: name {parsed.name!r} differs from its folder {path.parent.name!r}; Triton refuses that.")
        configs[parsed.name] = parsed
    if not configs:
        raise MissingArtifactError(f"no config.pbtxt under {root}; write the repository first.")
    return configs
