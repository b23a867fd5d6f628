"""The text space of hiergym observations, made correct under Gymnasium's vector envs.

Gymnasium's shared-memory path for :class:`gymnasium.spaces.Text` (``AsyncVectorEnv``'s default)
reads the shared buffer once, into a tuple of strings, when the vector env is built: every later
observation comes back as that first read (for an empty buffer, a string of ``'0'``), with no error.
:class:`ObservationText` is a ``Text`` whose shared memory is a byte buffer per env (length, then
the ASCII text) read *live*: ``AsyncVectorEnv(copy=True)`` (the default) deep-copies it into a tuple
of the current strings each step, and ``copy=False`` gets a view that always shows the latest
observations. Every hiergym id is therefore correct under ``gym.make_vec`` in both modes by default.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils.shared_memory import (
    create_shared_memory,
    read_from_shared_memory,
    write_to_shared_memory,
)

_HEADER = 8  # bytes of the length prefix


class ObservationText(spaces.Text):
    """``spaces.Text`` over an ASCII charset, with a working shared-memory layout."""

    @property
    def stride(self) -> int:
        return _HEADER + self.max_length


class SharedTexts(Sequence[str]):
    """The observations of ``n`` envs, decoded from the shared buffer whenever they are read."""

    def __init__(self, space: ObservationText, buffer: Any, n: int):
        self.space, self.buffer, self.n = space, buffer, n

    def _bytes(self) -> np.ndarray:
        return np.frombuffer(self.buffer.get_obj(), dtype=np.uint8)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(self.n)))
        if index < 0:
            index += self.n
        if not 0 <= index < self.n:
            raise IndexError(index)
        data = self._bytes()
        start = index * self.space.stride
        length = int(data[start : start + _HEADER].view(np.int64)[0])
        body = data[start + _HEADER : start + _HEADER + length]
        return body.tobytes().decode("ascii")

    def __iter__(self) -> Iterator[str]:
        return (self[i] for i in range(self.n))

    def __deepcopy__(self, memo: dict[int, Any]) -> tuple[str, ...]:
        return tuple(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"SharedTexts({tuple(s[:40] for s in self)!r})"


@create_shared_memory.register(ObservationText)
def _create(space: ObservationText, n: int = 1, ctx: ModuleType = mp) -> Any:
    return ctx.Array("B", n * space.stride)


@write_to_shared_memory.register(ObservationText)
def _write(space: ObservationText, index: int, value: str, shared_memory: Any) -> None:
    body = value.encode("ascii", "backslashreplace")[: space.max_length]
    data = np.frombuffer(shared_memory.get_obj(), dtype=np.uint8)
    start = index * space.stride
    data[start : start + _HEADER] = np.frombuffer(np.int64(len(body)).tobytes(), dtype=np.uint8)
    data[start + _HEADER : start + _HEADER + len(body)] = np.frombuffer(body, dtype=np.uint8)


@read_from_shared_memory.register(ObservationText)
def _read(space: ObservationText, shared_memory: Any, n: int = 1) -> SharedTexts:
    return SharedTexts(space, shared_memory, n)
