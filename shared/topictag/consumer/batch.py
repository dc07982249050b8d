"""A polled batch as it goes down a worker's steps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafka.consumer.fetcher import ConsumerRecord

from topictag.bus.publish import Message


@dataclass
class Batch:
    records: list[ConsumerRecord]
    items: list[Any] = field(default_factory=list)  # what the valid records decoded to, in order
    dead: list[tuple[ConsumerRecord, str]] = field(default_factory=list)  # records refused, and why
    results: list[Any] = field(default_factory=list)  # what the worker made of the items
    messages: list[Message] = field(default_factory=list)  # to produce before the commit
    committed: bool = False


# A step works on the batch in place; False abandons the batch (see the package docstring).
Step = Callable[[Batch], bool]
