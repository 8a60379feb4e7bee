"""TensorRT 10.x / 11.x and TensorRT-RTX: what notebooks 03-05 use beside TensorRT's own calls.

The notebooks write the TensorRT calls out themselves (04 the build, 05 the runtime loop). This package holds
what a tutorial should not re-type, behind these names (imported on first use, so ``import helpers.trt`` loads
no TensorRT):

* :func:`import_tensorrt` - ``tensorrt`` if installed, else ``tensorrt_rtx_bindings`` (or the flavour named);
* :func:`choose_profiles`, :class:`ProfileSet`, :func:`draw_profiles` - optimization profiles from 01's length
  statistics;
* :func:`engine_files`, :func:`ensure_engine` - the one way to get an engine that is up to date, with its
  metadata sidecar; :func:`check_engine` - the sidecar checked where the engine is about to run;
* :func:`make_buffers` - pinned host and device buffers (cuda-python, pycuda or torch);
* :func:`trtexec_command`, :func:`polygraphy_command`, :func:`run_command` - NVIDIA's command-line tools;
* :func:`smoke_onnx` - a tiny model with the classifier's I/O, for the install smoke test.

The engine behind the common backend interface is :class:`helpers.backends.TensorRTBackend`.

Modules, one concern each: ``compat`` (flavours and release differences, by feature detection), ``profiles``,
``builder``, ``metadata`` (the sidecar), ``buffers``, ``rtx`` (TensorRT-RTX's runtime settings), ``commands``,
``smoke``.
"""

from __future__ import annotations

from ..lazy import lazy_attributes


#: name -> module (relative to this package) that defines it
_FRONT_DOOR = {
    "import_tensorrt": ".compat",
    "ProfileSet": ".profiles",
    "choose_profiles": ".profiles",
    "draw_profiles": ".profiles",
    "engine_files": ".builder",
    "ensure_engine": ".builder",
    "check_engine": ".metadata",
    "make_buffers": ".buffers",
    "trtexec_command": ".commands",
    "polygraphy_command": ".commands",
    "run_command": ".commands",
    "smoke_onnx": ".smoke",
}

__all__ = sorted(_FRONT_DOOR)


__getattr__ = lazy_attributes(__name__, _FRONT_DOOR)
