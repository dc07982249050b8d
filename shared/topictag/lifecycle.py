"""The rules of an adapter's life, free of I/O: the states an adapter version and a
training run move through (stored as their string values), and when a candidate is
promoted."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide_promotion(candidate: dict, incumbent: dict, *, min_rouge_gain: float, max_bleu_drop: float) -> Decision:
    """Promote only a candidate that beats the incumbent (production adapter or the base
    model, scored on the same frozen split) on ROUGE-1 F by ``min_rouge_gain`` points
    without losing more than ``max_bleu_drop`` BLEU-3 points."""
    gain = candidate["rouge1_f"] - incumbent["rouge1_f"]
    drop = incumbent["bleu3"] - candidate["bleu3"]
    summary = f"ROUGE-1 F {candidate['rouge1_f']:.2f} vs {incumbent['rouge1_f']:.2f}, BLEU-3 {candidate['bleu3']:.2f} vs {incumbent['bleu3']:.2f}"
    if gain < min_rouge_gain:
        return Decision(False, f"not better: {summary} (needs +{min_rouge_gain} ROUGE-1 F)")
    if drop > max_bleu_drop:
        return Decision(False, f"BLEU-3 regressed: {summary} (at most -{max_bleu_drop} allowed)")
    return Decision(True, f"better: {summary}")
