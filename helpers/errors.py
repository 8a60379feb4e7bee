"""Project exception types.

Every error raised on purpose by ``helpers`` derives from :class:`SeriesError`. Messages name the step that
failed, what was expected, what came instead, and what to do about it, so that a notebook user never has to
read a traceback from deep inside bert4torch, ONNX Runtime or TensorRT.
"""

from __future__ import annotations


class SeriesError(Exception):
    """Base class for every deliberate error of this project."""


class ConfigError(SeriesError, ValueError):
    """A parameter has a value the series cannot use (unknown model size, negative batch size, ...)."""


class DataError(SeriesError, ValueError):
    """The corpus or a data directory is missing, unreadable, or unusable (e.g. a single class)."""


class InputError(SeriesError, ValueError):
    """Inference input is wrong: empty text list, wrong tensor names, dtypes, ranks or shapes."""


class CheckpointError(SeriesError):
    """A checkpoint is missing, unreadable, or would overwrite a different run."""


class MissingArtifactError(SeriesError, FileNotFoundError):
    """An earlier notebook's output is missing; the message names the notebook to run first."""


class ExportError(SeriesError):
    """Export to ONNX or an ONNX variant failed, or a model file is corrupt or foreign."""


class BackendError(SeriesError):
    """An inference backend could not be created or failed while running."""


class TensorRTUnavailableError(SeriesError, ImportError):
    """TensorRT (or a CUDA binding it needs) is not installed, or the feature is absent in this version."""


class EngineMismatchError(SeriesError):
    """A saved TensorRT engine does not match the running TensorRT, GPU, or its source ONNX."""


class ServingError(SeriesError):
    """The Triton server cannot be prepared, started, reached or stopped, or a served request failed."""
