"""Which papers go to the teacher. Deterministic by arxiv_id: the same paper is always in
or out, in every labeler process and every run, so a replay never samples differently."""

from __future__ import annotations

import hashlib
from typing import Protocol

from topictag.schemas import Paper
from topictag.settings import LabelerSettings


class SamplingPolicy(Protocol):
    def wants(self, paper: Paper) -> bool: ...


def unit_hash(key: str) -> float:
    """A stable number in [0, 1) for ``key``."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


class UniformSampler:
    def __init__(self, rate: float):
        self.rate = rate

    def wants(self, paper: Paper) -> bool:
        # Salted so the labeler's sample is independent of the trainer's evaluation split.
        return unit_hash(f"sample:{paper.arxiv_id}") < self.rate


def create_policy(settings: LabelerSettings) -> SamplingPolicy:
    if settings.policy == "uniform":
        return UniformSampler(settings.sample_rate)
    raise ValueError(f"unknown sampling policy {settings.policy!r}")
