"""Step: records into domain objects (papers, tag results)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from topictag.consumer.batch import Batch

E = TypeVar("E", bound=Exception)


class Decode(Generic[E]):
    """Decodes each record's value with ``decode``; a record it refuses with one of
    ``refused`` goes to ``batch.dead`` with ``reason(exc)`` and never stalls the partition."""

    def __init__(
        self,
        decode: Callable[[bytes], Any],
        refused: type[E] | tuple[type[E], ...],
        reason: Callable[[E], str] = str,
    ):
        self.decode, self.refused, self.reason = decode, refused, reason

    def __call__(self, batch: Batch) -> bool:
        for record in batch.records:
            try:
                batch.items.append(self.decode(record.value))
            except self.refused as exc:
                batch.dead.append((record, self.reason(exc)))
        return True
