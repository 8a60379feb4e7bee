"""TensorRT 10.x / 11.x and TensorRT-RTX: profiles, engine building, metadata, buffers and execution.

Modules (each of one concern; none imports ``tensorrt`` at import time, so this package loads on any
machine):

* :mod:`~helpers.trt.compat` - the two flavours (TensorRT, TensorRT-RTX) and every release difference, by
  feature detection, and the list of TensorRT names helpers uses;
* :mod:`~helpers.trt.profiles` - optimization profiles from length statistics and expected batch sizes;
* :mod:`~helpers.trt.builder` - ONNX -> engine with the Python builder API;
* :mod:`~helpers.trt.commands` - the equivalent ``trtexec`` and ``polygraphy`` command lines, and the
  trtexec build;
* :mod:`~helpers.trt.metadata` - the engine's metadata sidecar and the check that it fits where it loads;
* :mod:`~helpers.trt.buffers` - pinned host + device buffers (cuda-python, pycuda, torch);
* :mod:`~helpers.trt.runtime` - engine loading (device first) and the per-call execution sequence;
* :mod:`~helpers.trt.rtx` - TensorRT-RTX's runtime settings (runtime cache, CUDA graphs, kernel specialisation);
* :mod:`~helpers.trt.smoke` - a tiny ONNX model with the classifier's I/O, for install smoke tests.
"""
