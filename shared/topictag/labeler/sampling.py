"""Which papers go to the teacher.

``uniform`` reads new papers and takes a fixed share, deterministic by arxiv_id: the same
paper is always in or out, in every labeler process and every run, so a replay never
samples differently.

``confidence`` reads the taggers' results instead and takes the papers the student was
least sure of (lowest mean token log-probability): the same share of the stream, spent
where the student has the most to learn.
"""

from __future__ import annotations

import bisect
import hashlib
from collections import deque
from typing import Protocol

from topictag.settings import LabelerSettings, Settings


class SamplingPolicy(Protocol):
    # True: the policy judges tagged papers (``papers.tagged``, with the student's
    # confidence); False: new papers (``papers``) before any tagger has seen them.
    reads_tagged: bool

    def wants(self, arxiv_id: str, confidence: float | None = None) -> bool: ...


def unit_hash(key: str) -> float:
    """A stable number in [0, 1) for ``key``."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


class UniformSampler:
    reads_tagged = False

    def __init__(self, rate: float):
        self.rate = rate

    def wants(self, arxiv_id: str, confidence: float | None = None) -> bool:
        # Salted so the labeler's sample is independent of the trainer's evaluation split.
        return unit_hash(f"sample:{arxiv_id}") < self.rate


class ConfidenceSampler:
    """Takes a tagged paper when its confidence is among the lowest ``rate`` share of the
    last ``window`` tagged papers. A window, not a fixed threshold: a new adapter shifts the
    scale of confidences, and the share sent to the teacher stays the budget.

    Until ``warmup`` confidences are in, and for a paper the student was not asked about
    (no confidence), it falls back to the uniform sample.
    """

    reads_tagged = True

    def __init__(self, rate: float, window: int = 1000, warmup: int = 50):
        self.rate = rate
        self.warmup = warmup
        self.uniform = UniformSampler(rate)
        self._recent: deque[float] = deque(maxlen=window)
        self._sorted: list[float] = []  # the same values, ordered

    def wants(self, arxiv_id: str, confidence: float | None = None) -> bool:
        if confidence is None or len(self._recent) < self.warmup:
            decision = self.uniform.wants(arxiv_id)
        else:
            below = int(self.rate * len(self._sorted))  # how many of the window the budget covers
            decision = self.rate >= 1 or (below > 0 and bisect.bisect_left(self._sorted, confidence) < below)
        if confidence is not None:
            self._remember(confidence)
        return decision

    def _remember(self, confidence: float) -> None:
        if len(self._recent) == self._recent.maxlen:
            del self._sorted[bisect.bisect_left(self._sorted, self._recent[0])]
        self._recent.append(confidence)
        bisect.insort(self._sorted, confidence)


def create_policy(settings: LabelerSettings) -> SamplingPolicy:
    if settings.policy == "uniform":
        return UniformSampler(settings.sample_rate)
    if settings.policy == "confidence":
        return ConfidenceSampler(settings.sample_rate, settings.confidence_window, settings.confidence_warmup)
    raise ValueError(f"unknown sampling policy {settings.policy!r}")


def labeler_topic(settings: Settings) -> str:
    """The topic the labeler reads under its configured policy."""
    return settings.kafka.tagged_topic if create_policy(settings.labeler).reads_tagged else settings.kafka.papers_topic
