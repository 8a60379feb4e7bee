"""The per-shape LRU cache of the GPU backends, and that it stands on its own."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers.backends.shape_cache import ShapeCache
from helpers.errors import ConfigError


def test_shape_cache_builds_once_per_shape_and_evicts_least_recent():
    built, freed = [], []
    cache = ShapeCache(lambda key: built.append(key) or f"slot{key}", max_entries=2, on_evict=freed.append)
    assert cache.get((1, 8)) == "slot(1, 8)"
    cache.get((1, 8))
    cache.get((2, 8))
    assert built == [(1, 8), (2, 8)] and cache.builds == 2 and len(cache) == 2
    cache.get((1, 8))          # (1, 8) is now the most recent
    cache.get((4, 8))          # so (2, 8) goes
    assert freed == ["slot(2, 8)"] and cache.evictions == 1
    assert cache.keys() == [(1, 8), (4, 8)] and (2, 8) not in cache
    cache.get((2, 8))
    assert cache.builds == 4   # rebuilt after eviction
    cache.clear()
    assert len(cache) == 0 and set(freed) == {"slot(2, 8)", "slot(1, 8)", "slot(4, 8)"}


def test_shape_cache_needs_room():
    with pytest.raises(ConfigError, match="max_entries >= 1"):
        ShapeCache(lambda k: k, max_entries=0)


def test_onnxruntime_cuda_does_not_need_pytorch():
    """The cache used to live in torch_gpu.py; the ONNX Runtime CUDA backend (and the backend registry beside it)
    must load without PyTorch."""
    code = ("import sys, helpers.backends.onnxruntime_cuda as m; "
            "assert m.ShapeCache.__module__ == 'helpers.backends.shape_cache', m.ShapeCache.__module__; "
            "assert 'torch' not in sys.modules, 'importing onnxruntime_cuda imported torch'")
    subprocess.run([sys.executable, "-c", code], check=True)
