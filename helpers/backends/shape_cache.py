"""Per-shape resources of the GPU backends, built once per input shape and kept in a small LRU cache.

A GPU backend that prepares something for each input shape - pinned staging buffers, a captured CUDA graph,
a compiled kernel, ONNX Runtime's I/O-bound device buffers - keeps it here, keyed by ``(batch, seq_len)``:
built on the first call with that shape, reused after, and released (``on_evict``) when the cache is full
and the shape is the least recently used. ``Classifier(..., pad_multiple=16)`` bounds how many shapes come.
Used by :mod:`helpers.backends.torch_gpu` and :mod:`helpers.backends.onnxruntime_cuda`; it knows nothing of
either.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

from ..errors import ConfigError

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ShapeCache(Generic[K, V]):
    """Build a value once per key (an input shape), keep at most ``max_entries``, least recently used out.

    ``on_evict(value)`` is called for a value pushed out (to release its buffers). ``builds`` and
    ``evictions`` count what happened, for reports and tests.
    """

    def __init__(self, build: Callable[[K], V], max_entries: int, on_evict: Callable[[V], None] | None = None) -> None:
        if max_entries < 1:
            raise ConfigError(f"ShapeCache needs max_entries >= 1, got {max_entries}.")
        self._build, self._on_evict, self.max_entries = build, on_evict, max_entries
        self._items: OrderedDict[K, V] = OrderedDict()
        self.builds = 0
        self.evictions = 0

    def get(self, key: K) -> V:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = self._build(key)
        self.builds += 1
        self._items[key] = value
        while len(self._items) > self.max_entries:
            _, old = self._items.popitem(last=False)
            self.evictions += 1
            if self._on_evict is not None:
                self._on_evict(old)
        return value

    def keys(self) -> list[K]:
        return list(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        while self._items:
            _, old = self._items.popitem(last=False)
            if self._on_evict is not None:
                self._on_evict(old)
