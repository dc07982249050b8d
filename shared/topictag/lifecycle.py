"""The states an adapter version and a training run move through, and which of them end
a training. Stored as their string values."""

from __future__ import annotations

from enum import StrEnum


class AdapterStatus(StrEnum):
    CANDIDATE = "candidate"  # registered, not yet decided
    PRODUCTION = "production"  # what the taggers serve; at most one
    REFUSED = "refused"  # scored no better than the incumbent
    RETIRED = "retired"  # was in production, replaced or rolled back


class TrainingStatus(StrEnum):
    RUNNING = "running"
    PROMOTED = "promoted"
    REFUSED = "refused"
    SKIPPED = "skipped"  # too few labels to train and evaluate
    FAILED = "failed"  # raised, or its worker died; the request may train again

    @property
    def done(self) -> bool:
        """Ended for good: a request in one of these states is not trained again."""
        return self in (TrainingStatus.PROMOTED, TrainingStatus.REFUSED, TrainingStatus.SKIPPED)

    @property
    def ended(self) -> bool:
        """No longer running (``done``, or failed)."""
        return self is not TrainingStatus.RUNNING


# Trainings whose labels count as seen: the next training waits for labels newer than theirs.
TRAINED = (TrainingStatus.PROMOTED, TrainingStatus.REFUSED)
