"""Load a TensorRT engine and run it with the TensorRT 10/11 name-based API.

What replaced the original article's TensorRT 8 code (``get_binding_shape``, ``set_binding_shape``,
``active_optimization_profile = 0``, ``execute_async_v2(bindings)``, a never-published
``allocate_buffers_v2``):

1. ``engine.num_io_tensors`` / ``get_tensor_name(i)`` / ``get_tensor_mode(name)`` list the I/O tensors by
   name; ``trt.nptype(engine.get_tensor_dtype(name))`` gives each buffer's dtype (since TensorRT 9 an
   int64 input needs int64 buffers, so dtypes are read, never assumed).
2. ``engine.get_tensor_profile_shape(name, i)`` gives each profile's (min, opt, max); buffers are
   allocated once at the largest shape and reused.
3. Per call: pick the profile (``set_optimization_profile_async(i, stream)`` when it changes),
   ``set_input_shape(name, shape)`` for every input, copy inputs to the device, ``set_tensor_address``
   for **every** input and output, ``execute_async_v3(stream)``, read each output's shape from the
   context, copy outputs back, synchronise the stream.

Order matters twice. The device comes first: :func:`open_engine` opens the buffers, which make their GPU
current, *before* the engine is deserialized and its context created, because TensorRT puts both on the
current device. And per call the profile comes first: a profile switch clears the input shapes, and
``set_input_shape`` refuses a shape outside the *active* profile, so shapes are set after the switch.

Every boolean TensorRT returns is checked; a ``False`` becomes a :class:`~helpers.errors.BackendError`
naming the call, the tensor and TensorRT's own log messages. Feeds arrive validated by
:meth:`helpers.backends.base.Backend.validate_feed` (rank, integer dtype, one shape, limits); the runner
checks only what the engine alone knows: its input names, its profiles and its input dtypes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..config import INPUT_NAMES
from ..errors import BackendError, EngineMismatchError, InputError, MissingArtifactError
from ..export import TensorSpec
from . import compat
from .buffers import DeviceBuffers, make_buffers, size_buffers
from .profiles import ProfileSet, ShapeProfile
from .rtx import RtxRuntime, RtxRuntimeSettings, execution_context


# -------------------------------------------------------------------------------------------- I/O specs
def io_specs_from_engine(engine: Any, trt: Any) -> tuple[TensorSpec, ...]:
    """The engine's I/O tensors in engine order, dtypes from ``trt.nptype(engine.get_tensor_dtype(name))``."""
    specs = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        dtype = compat.numpy_dtype(trt, engine.get_tensor_dtype(name))
        specs.append(TensorSpec(name, is_input, dtype, tuple(int(d) for d in engine.get_tensor_shape(name))))
    return tuple(specs)


def profiles_from_engine(engine: Any, input_names: Sequence[str] = INPUT_NAMES) -> ProfileSet:
    """The engine's optimization profiles as a :class:`ProfileSet` (read from the first input; checked equal
    for every input, since this project's inputs share one ``[batch, seq_len]`` shape)."""
    profiles = []
    for index in range(engine.num_optimization_profiles):
        per_input = {}
        for name in input_names:
            low, opt, high = (tuple(int(d) for d in dims) for dims in engine.get_tensor_profile_shape(name, index))
            per_input[name] = (low, opt, high)
        first = per_input[input_names[0]]
        if any(v != first for v in per_input.values()):
            raise BackendError(f"engine profile {index} gives the inputs different shapes {per_input}; this project's "
                               "inputs always share one [batch, seq_len] shape. Rebuild with 04_build_engine.")
        (b0, l0), (b1, l1), (b2, l2) = first
        profiles.append(ShapeProfile(b0, b1, b2, l0, l1, l2))
    return ProfileSet(tuple(profiles), reason="read from the engine")


# ------------------------------------------------------------------------------------------------ loading
@dataclass
class LoadedEngine:
    """A deserialized engine with the runtime and logger that must outlive it."""

    trt: Any
    runtime: Any
    engine: Any
    logger: Any
    path: Path

    def release(self) -> None:
        """Drop the engine, then the runtime that made it (TensorRT 11: references only, no ``with``)."""
        self.engine = None
        self.runtime = None


def load_engine(path: str | os.PathLike[str], trt: Any = None) -> LoadedEngine:
    """Deserialize the engine file at ``path`` onto the current CUDA device (check its metadata first with
    :mod:`helpers.trt.metadata`; open the buffers first to choose the device, as :func:`open_engine` does)."""
    trt = trt if trt is not None else compat.import_tensorrt()
    path = Path(path)
    if not path.is_file():
        raise MissingArtifactError(f"no TensorRT engine at {path}; run notebook 04_build_engine first.")
    logger = compat.capturing_logger(trt)
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(path.read_bytes())
    if engine is None:
        raise EngineMismatchError(
            f"TensorRT {compat.features_of(trt).version} could not deserialize {path.name}: "
            + (" | ".join(logger.errors()) or "no message") + ". Rebuild it with 04_build_engine on this machine.")
    return LoadedEngine(trt, runtime, engine, logger, path)


# ------------------------------------------------------------------------------------------------ running
class EngineRunner:
    """One execution context of one engine, with buffers allocated once at the profiles' maximum.

    Made by :func:`open_engine`. The runner owns ``buffers`` (open, on the device the engine was loaded on) and
    closes them with itself. ``infer({"input_ids": ..., "segment_ids": ...})`` returns ``{output name: array}``;
    returned arrays are fresh copies (the pinned buffers are reused by the next call). Not thread-safe: use
    one runner per thread (each has its own context and stream).
    """

    def __init__(self, loaded: LoadedEngine, buffers: DeviceBuffers,
                 rtx: RtxRuntimeSettings = RtxRuntimeSettings()) -> None:
        self.trt = loaded.trt
        self.loaded = loaded
        self.buffers = buffers
        self._context: Any = None
        self.rtx: RtxRuntime | None = None
        self._active: int | None = None
        try:
            engine = loaded.engine
            self.specs = io_specs_from_engine(engine, self.trt)
            self.inputs = tuple(s for s in self.specs if s.is_input)
            self.outputs = tuple(s for s in self.specs if not s.is_input)
            self.profile_set = profiles_from_engine(engine, [s.name for s in self.inputs])
            self._context, self.rtx = execution_context(engine, self.trt, rtx)
            if self._context is None:
                raise BackendError("TensorRT could not create an execution context (out of GPU memory?): "
                                   + (" | ".join(loaded.logger.errors()) or "no message"))
            self.buffer_sizes = size_buffers(self.specs, self.profile_set.max_batch, self.profile_set.max_len,
                                            max_shapes=self._max_output_shapes())
            self.buffers.allocate(self.buffer_sizes)
        except BaseException:
            self._context, self.rtx = None, None  # drop TensorRT's objects while the device is current
            loaded.release()
            raise

    # ---------------------------------------------------------------------------- setup
    def _select(self, index: int) -> None:
        if self._active != index:
            self._active = None  # a refused switch leaves no profile this runner can rely on
            ok = self._context.set_optimization_profile_async(index, self.buffers.stream_handle)
            self._check(ok, f"set_optimization_profile_async({index})")
            self._active = index

    def _set_shapes(self, shape: tuple[int, int]) -> None:
        for spec in self.inputs:
            self._check(self._context.set_input_shape(spec.name, shape), f"set_input_shape({spec.name!r}, {shape})")

    def _max_output_shapes(self) -> dict[str, tuple[int, ...]]:
        """Each output's largest shape: set every profile's max input shape and read the context's answer."""
        best: dict[str, tuple[int, ...]] = {}
        for index, profile in enumerate(self.profile_set.profiles):
            self._select(index)
            self._set_shapes(profile.max_shape)
            for spec in self.outputs:
                shape = tuple(int(d) for d in self._context.get_tensor_shape(spec.name))
                if spec.name not in best or np.prod(shape) > np.prod(best[spec.name]):
                    best[spec.name] = shape
        return best

    def _check(self, ok: Any, what: str) -> None:
        if not ok:
            raise BackendError(f"TensorRT {what} returned False: "
                               + (" | ".join(self.loaded.logger.errors()[-3:]) or "no message") + ".")

    # ---------------------------------------------------------------------------- running
    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch of validated ``[batch, seq_len]`` arrays (one shape for all inputs)."""
        missing = [s.name for s in self.inputs if s.name not in feeds]
        unknown = sorted(set(feeds) - {s.name for s in self.inputs})
        if missing or unknown:
            raise InputError(f"TensorRT engine inputs are {[s.name for s in self.inputs]}; missing {missing}, unknown {unknown}.")
        batch, seq_len = np.shape(feeds[self.inputs[0].name])
        self._select(self.profile_set.select(batch, seq_len))
        self._set_shapes((batch, seq_len))
        for spec in self.inputs:
            arr = np.asarray(feeds[spec.name])
            if not np.can_cast(arr.dtype, spec.dtype, casting="same_kind"):
                raise InputError(f"TensorRT engine: {spec.name} must be {spec.dtype} (read from the engine), got {arr.dtype}.")
            view = self.buffers.host_view(spec.name, arr.shape)
            np.copyto(view, arr, casting="same_kind")
            self.buffers.to_device(spec.name, view.nbytes)
        unresolved = self._context.infer_shapes()
        if unresolved:
            raise BackendError(f"TensorRT could not infer the shapes of {list(unresolved)}; set every input's shape.")
        for spec in self.specs:
            self._check(self._context.set_tensor_address(spec.name, self.buffers.device_ptr(spec.name)),
                        f"set_tensor_address({spec.name!r})")
        self._check(self._context.execute_async_v3(self.buffers.stream_handle), "execute_async_v3")
        out_shapes = {}
        for spec in self.outputs:
            out_shapes[spec.name] = tuple(int(d) for d in self._context.get_tensor_shape(spec.name))
            self.buffers.to_host(spec.name, int(np.prod(out_shapes[spec.name])) * spec.dtype.itemsize)
        self.buffers.synchronize()
        return {name: self.buffers.host_view(name, shape).copy() for name, shape in out_shapes.items()}

    @property
    def active_profile(self) -> int | None:
        return self._active

    def describe(self) -> dict[str, Any]:
        return {"engine": str(self.loaded.path), "profiles": self.profile_set.table(),
                "buffers": self.buffers.describe(), "rtx_runtime": self.rtx.describe() if self.rtx else None}

    def close(self) -> None:
        """Save TensorRT-RTX's runtime cache (if any), drop the context and the engine while their device is
        still current, then free the buffers (which pops pycuda's context). Safe to call twice."""
        if self.loaded is None:
            return
        try:
            if self.rtx is not None:
                self.rtx.save_cache()
        finally:
            self._context = None
            self.rtx = None
            self.loaded.release()
            self.loaded = None
            self.buffers.close()

    def __enter__(self) -> "EngineRunner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_engine(engine_path: str | os.PathLike[str], *, trt: Any = None, buffers: str | DeviceBuffers = "cuda-python",
                device: int = 0, rtx: RtxRuntimeSettings = RtxRuntimeSettings()) -> EngineRunner:
    """Open buffers on CUDA ``device`` (making it current), deserialize the engine there, create its context.

    ``buffers`` is a kind (``"cuda-python"``, ``"pycuda"``, ``"torch"``) or open
    :class:`~helpers.trt.buffers.DeviceBuffers`, which the runner then owns. If anything fails, what was made
    is closed before the error is raised.
    """
    trt = trt if trt is not None else compat.import_tensorrt()
    opened = buffers if isinstance(buffers, DeviceBuffers) else make_buffers(buffers, device)
    try:
        return EngineRunner(load_engine(engine_path, trt), opened, rtx)
    except BaseException:
        opened.close()
        raise
