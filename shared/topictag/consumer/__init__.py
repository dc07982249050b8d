"""The consumer kit: a consuming worker is a short list of steps over each polled batch,
in the style of getsentry/arroyo, and one run loop (``run.py``) drives them.

A typical chain, one step per file: ``Decode`` (records into domain objects; the rest to
``batch.dead`` with a reason) -> ``DeadLetter`` (dead records as dead letters) -> the
worker's own processing -> ``Persist`` (a store write, retried while the store is down)
-> ``Produce`` (every output message acknowledged) -> ``Commit`` (the batch's offsets).
A step returns False to abandon the batch when asked to stop mid-way: nothing after it
runs, the offsets are not committed and the batch is replayed (at-least-once; the
store's upserts make the replay harmless).
"""

from topictag.consumer.batch import Batch, Step
from topictag.consumer.commit import Commit
from topictag.consumer.dead_letter import DeadLetter
from topictag.consumer.decode import Decode
from topictag.consumer.persist import Persist
from topictag.consumer.produce import Produce
from topictag.consumer.run import (
    BatchSource,
    Pipeline,
    kafka_source,
    run,
    stop_on_signals,
)

__all__ = [
    "Batch",
    "BatchSource",
    "Commit",
    "DeadLetter",
    "Decode",
    "Persist",
    "Pipeline",
    "Produce",
    "Step",
    "kafka_source",
    "run",
    "stop_on_signals",
]
