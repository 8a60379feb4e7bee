"""The models a benchmark runs: the trained checkpoint, and a randomly initialised architecture model.

Speed does not depend on weight values, so the BERT-base *architecture* (12 layers x 768, Chinese BERT's
vocabulary of 21,128 tokens) with random weights stands in for a pretrained BERT-base: no download, same
arithmetic. Its ONNX files are written beside the benchmark results with the same export functions and
recipe notebook 02 uses for the trained model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import resolve_model_size
from ..errors import MissingArtifactError
from ..export import ONNX_FILES

#: Vocabulary size of Google's Chinese BERT-base (``bert-base-chinese``).
CHINESE_BERT_VOCAB = 21128


@dataclass(frozen=True)
class ArchitectureModel:
    """A randomly initialised classifier of a named model size, what its ONNX export needs, and the model
    files written for it (variant -> path, as :func:`~helpers.backends.model_files` gives them)."""

    model: Any
    model_size: str
    vocab_size: int
    labels: tuple[str, ...] = ("negative", "positive")
    max_len: int = 512
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Its name in benchmark results: ``arch-<model size>``."""
        return f"arch-{self.model_size}"


#: The ONNX variants an architecture study writes: the CPU ones, and on a GPU machine the FP16 ones.
CPU_VARIANTS = ("plain", "fused", "int8")
GPU_VARIANTS = ("fp16", "fused-fp16", "fused-fp16-rightpad")


def architecture_model(model_size: str = "base", vocab_size: int = CHINESE_BERT_VOCAB, seed: int = 0, *,
                       onnx_dir: str | os.PathLike[str] | None = None, log: Any = print) -> ArchitectureModel:
    """The classifier of ``model_size`` (e.g. ``base`` = BERT-base) with seeded random weights, in eval mode.

    With ``onnx_dir``, its ONNX variants are written there where missing (:func:`ensure_onnx_set`: the CPU
    variants, plus the FP16 ones where PyTorch sees a GPU) and listed in ``files``. For BERT-base that is
    about 880 MB on a CPU machine, more on a GPU one (its FP16 graphs too).
    """
    import torch

    from ..config import has_cuda
    from ..model import SentimentClassifier, bert_config

    size = resolve_model_size(model_size)
    torch.manual_seed(seed)
    model = SentimentClassifier(bert_config(size, vocab_size), num_labels=2).eval()
    arch = ArchitectureModel(model, size.name, vocab_size)
    if onnx_dir is None:
        return arch
    variants = CPU_VARIANTS + (GPU_VARIANTS if has_cuda() else ())
    return replace(arch, files=ensure_onnx_set(arch, onnx_dir, variants, log=log))


def onnx_paths(folder: str | os.PathLike[str]) -> dict[str, Path]:
    """Variant name -> path inside ``folder`` (whether or not the file exists)."""
    return {variant: Path(folder) / name for variant, name in ONNX_FILES.items()}


def ensure_onnx_set(arch: ArchitectureModel, folder: str | os.PathLike[str], variants: tuple[str, ...] = ("plain", "fused", "int8"),
                    log: Any = print) -> dict[str, Path]:
    """Write the ONNX ``variants`` of ``arch`` into ``folder`` where missing; return variant -> path.

    The recipe is notebook 02's: plain export (attention scale as a division) -> ONNX Runtime fused graph
    (SkipLayerNormalization fusion off) -> dynamic INT8 of the fused graph; FP16 from the plain export; the
    GPU-fused FP16 graphs (raw 2-D mask, and 1-D mask index for right-padded batches) from the plain export.
    """
    from ..export import onnx_from_classifier
    from ..onnx_variants import (RIGHT_PADDED_GPU_FUSION, fp16_onnx_from_plain, fused_fp16_onnx_from_plain,
                                 fused_onnx_from_plain, int8_onnx_from)

    paths = onnx_paths(folder)
    unknown = [v for v in variants if v not in paths]
    if unknown:
        raise MissingArtifactError(f"unknown ONNX variants {unknown}; choose from {list(paths)}.")
    steps = {
        "plain": lambda: onnx_from_classifier(arch.model, paths["plain"], labels=list(arch.labels),
                                              max_len=arch.max_len, model_size=arch.model_size),
        "fused": lambda: fused_onnx_from_plain(paths["plain"], paths["fused"]),
        "int8": lambda: int8_onnx_from(paths["fused"], paths["int8"]),
        "fp16": lambda: fp16_onnx_from_plain(paths["plain"], paths["fp16"]),
        "fused-fp16": lambda: fused_fp16_onnx_from_plain(paths["plain"], paths["fused-fp16"]),
        "fused-fp16-rightpad": lambda: fused_fp16_onnx_from_plain(paths["plain"], paths["fused-fp16-rightpad"],
                                                                  RIGHT_PADDED_GPU_FUSION),
    }
    needs = {"plain": (), "fused": ("plain",), "int8": ("fused",), "fp16": ("plain",), "fused-fp16": ("plain",),
             "fused-fp16-rightpad": ("plain",)}
    required = set(variants)
    for v in ("int8", "fp16", "fused-fp16", "fused-fp16-rightpad", "fused"):  # dependants before what they depend on
        if v in required:
            required.update(needs[v])
    for v in ONNX_FILES:  # plain, fused, int8, fp16, fused-fp16(-rightpad): each after what it is made from
        if v in required and not paths[v].is_file():
            if log is not None:
                log(f"writing {paths[v].name} ({arch.model_size} architecture) ...")
            steps[v]()
    return {v: paths[v] for v in variants}
