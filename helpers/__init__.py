"""Support for the notebook series: the few names the notebooks import, from the modules that hold them.

The notebooks import from here and from the packages :mod:`helpers.backends`, :mod:`helpers.trt`,
:mod:`helpers.bench` and :mod:`helpers.serving`. Names are imported on first use, so ``import helpers``
loads neither PyTorch nor TensorRT.
"""

from __future__ import annotations

from .lazy import lazy_attributes


#: name -> module (relative to this package) that defines it
_FRONT_DOOR = {
    "notebook_setup": ".notebook",
    "show": ".notebook",
    # 01_train
    "FineTuning": ".train",
    "SentimentClassifier": ".model",
    "encoder_start": ".pretrain",
    "load_corpus": ".data",
    "refuse_to_replace": ".model",
    "resolve_model_size": ".config",
    "save_trained_model": ".model",
    "seed_everything": ".train",
    "train_baseline": ".baseline",
    "train_config_from": ".train",
    # 02_onnx_export
    "Classifier": ".backends",
    "attention_scale_as_division": ".export",
    "check_parity": ".parity",
    "load_checkpoint": ".model",
    "load_split": ".data",
    "model_files": ".backends",
    "open_backend": ".backends",
    "save_export": ".export",
    "speed_study": ".fastpath",
    "write_gpu_graphs": ".fastpath",
}

__all__ = sorted(_FRONT_DOOR)


__getattr__ = lazy_attributes(__name__, _FRONT_DOOR)
