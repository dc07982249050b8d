"""The consumer kit with in-memory fakes of its edges (a batch source, a publisher, a
store, a committing consumer): no broker, no model, no database."""

from __future__ import annotations

import os
import signal
import threading
from types import SimpleNamespace

from sqlalchemy.exc import OperationalError
from topictag.backoff import Backoff
from topictag.bus.dead_letter import (
    REASON,
    SOURCE_OFFSET,
    SOURCE_TOPIC,
    dead_letter_reason,
)
from topictag.bus.publish import Message
from topictag.consumer import (
    Commit,
    DeadLetter,
    Decode,
    Persist,
    Pipeline,
    Produce,
    run,
    stop_on_signals,
)

QUICK = Backoff(0.001, 0.002)


def record(offset, value, partition=0):
    return SimpleNamespace(topic="papers", partition=partition, offset=offset, key=f"k{offset}".encode(), value=value)


class Source:
    """Hands out the given batches, then nothing."""

    def __init__(self, *batches):
        self.batches = list(batches)
        self.polls = 0

    def __call__(self, stopping):
        self.polls += 1
        return self.batches.pop(0) if self.batches else []


class Publisher:
    """Acknowledges each publish, or refuses the first ``refuse`` ones (as a stop would)."""

    def __init__(self, events, refuse=0):
        self.events, self.refuse = events, refuse

    def publish(self, messages, stopping=None):
        if self.refuse:
            self.refuse -= 1
            return False
        self.events.append(("acked", [m.value for m in messages]))
        return True


class Consumer:
    def __init__(self, events):
        self.events = events

    def commit(self, offsets):
        self.events.append(("commit", {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}))


class Store:
    """Saves results; unavailable for the first ``down`` attempts."""

    def __init__(self, events, down=0):
        self.events, self.down, self.attempts = events, down, 0

    def save(self, batch):
        self.attempts += 1
        if self.attempts <= self.down:
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        self.events.append(("saved", list(batch.results)))


def decode(value: bytes) -> str:
    text = value.decode()
    if not text.startswith("paper"):
        raise ValueError(f"not a paper: {text}")
    return text


def upper(batch):
    batch.results = [item.upper() for item in batch.items]
    batch.messages += [Message("tagged", r.encode()) for r in batch.results]
    return True


def pipeline(events, stopping, *, store_down=0, refuse=0):
    store = Store(events, down=store_down)
    steps = Pipeline([
        Decode(decode, ValueError),
        DeadLetter("papers.dlq"),
        upper,
        Persist(store.save, stopping, QUICK, what="saving"),
        Produce(Publisher(events, refuse=refuse), stopping),
        Commit(Consumer(events)),
    ])
    return steps, store


def test_commit_comes_after_the_store_and_the_acknowledgements():
    events, stopping = [], threading.Event()
    steps, _ = pipeline(events, stopping)
    batch = steps([record(0, b"paper a"), record(1, b"paper b", partition=1), record(2, b"paper c")])
    assert events == [
        ("saved", ["PAPER A", "PAPER B", "PAPER C"]),
        ("acked", [b"PAPER A", b"PAPER B", b"PAPER C"]),
        ("commit", {("papers", 0): 3, ("papers", 1): 2}),  # one past the last record of each partition
    ]
    assert batch.committed


def test_an_invalid_record_is_dead_lettered_with_its_reason_and_the_rest_goes_on():
    events, stopping = [], threading.Event()
    steps, _ = pipeline(events, stopping)
    batch = steps([record(0, b"paper a"), record(1, b"\xffjunk"), record(2, b"spam")])
    assert batch.results == ["PAPER A"]
    assert [reason for _, reason in batch.dead] == ["'utf-8' codec can't decode byte 0xff in position 0: invalid start byte",
                                                     "not a paper: spam"]
    dead_letters = [m for m in batch.messages if m.topic == "papers.dlq"]
    assert [m.value for m in dead_letters] == [b"\xffjunk", b"spam"]  # the original bytes
    headers = dict(dead_letters[1].headers)
    assert headers[REASON] == b"not a paper: spam" and headers[SOURCE_TOPIC] == b"papers" and headers[SOURCE_OFFSET] == b"2"
    assert dead_letter_reason(dead_letters[1].headers)["reason"] == "not a paper: spam"
    assert ("acked", [b"\xffjunk", b"spam", b"PAPER A"]) in events and batch.committed


def test_a_failed_persist_is_retried_then_the_batch_goes_on():
    events, stopping = [], threading.Event()
    steps, store = pipeline(events, stopping, store_down=2)
    batch = steps([record(0, b"paper a")])
    assert store.attempts == 3
    assert [e[0] for e in events] == ["saved", "acked", "commit"] and batch.committed


def test_a_stop_while_the_store_is_down_abandons_the_batch_uncommitted():
    events, stopping = [], threading.Event()
    steps, store = pipeline(events, stopping, store_down=10**6)
    stopping.set()
    batch = steps([record(0, b"paper a")])
    assert store.attempts == 1 and events == [] and not batch.committed  # replayed by the next owner


def test_no_commit_when_the_results_were_not_acknowledged():
    events, stopping = [], threading.Event()
    steps, _ = pipeline(events, stopping, refuse=1)
    batch = steps([record(0, b"paper a")])
    assert [e[0] for e in events] == ["saved"] and not batch.committed


def test_the_run_loop_runs_between_batches_and_reports_each_batch():
    events, stopping = [], threading.Event()
    steps, _ = pipeline(events, stopping)
    source = Source([record(0, b"paper a")], [], [record(1, b"paper b")])
    between, outcomes = [], []
    run(source, steps, stopping, between_batches=lambda: between.append(source.polls), on_batch=outcomes.append,
        max_batches=2)
    assert [b.results for b in outcomes] == [["PAPER A"], ["PAPER B"]]
    assert between == [0, 1, 2]  # before every poll, empty ones included


def test_a_signal_finishes_and_commits_the_batch_in_hand_then_stops():
    events, stopping = [], threading.Event()
    steps, _ = pipeline(events, stopping)

    def signalled(batch):  # SIGTERM arrives while the first batch is being processed
        os.kill(os.getpid(), signal.SIGTERM)
        return True

    steps.steps.insert(2, signalled)
    source = Source([record(0, b"paper a")], [record(1, b"paper b")])
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        stop_on_signals(stopping.set)
        run(source, steps, stopping)
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
    assert stopping.is_set() and source.polls == 1  # the second batch was never taken
    assert events[-1] == ("commit", {("papers", 0): 1})  # the first one was finished and committed
