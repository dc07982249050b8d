"""The acks-checked publisher over an in-memory producer: every send's acknowledgement is
checked, what was not acknowledged is resent, nothing is reported done that was not."""

from __future__ import annotations

import threading

from kafka.errors import (
    BrokerNotAvailableError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
)
from kafka.producer.future import RecordMetadata
from topictag.backoff import Backoff
from topictag.bus.publish import Message, ReliablePublisher

QUICK = Backoff(0.001, 0.002)


class Future:
    def __init__(self, result=None, error=None):
        self.result, self.error = result, error

    def get(self, timeout=None):
        if self.error:
            raise self.error
        return self.result


class FakeProducer:
    """Acknowledges every send, except the keys in ``refuse`` (the first ``times`` sends of
    each) and values over ``max_bytes``, refused at send time."""

    def __init__(self, refuse=(), times=1, max_bytes=1000):
        self.refuse = {k: times for k in refuse}
        self.max_bytes = max_bytes
        self.log: list[tuple[str, str]] = []  # (topic, key) of every send, in order
        self.acked: list[Message] = []
        self.closed = False

    def send(self, topic, key=None, value=b"", headers=None):
        if len(value) > self.max_bytes:
            raise MessageSizeTooLargeError("too large")
        self.log.append((topic, key))
        if self.refuse.get(key, 0) > 0:
            self.refuse[key] -= 1
            return Future(error=KafkaTimeoutError("no ack"))
        self.acked.append(Message(topic, value, key, headers))
        return Future(RecordMetadata(topic, 0, None, len(self.acked) - 1, 0, None, None, len(value), -1))

    def flush(self, timeout=None):
        pass

    def close(self, timeout=None):
        self.closed = True


def messages(n):
    return [Message("papers", f"v{i}".encode(), key=f"k{i}", headers=[("h", b"1")]) for i in range(n)]


def test_everything_acknowledged_in_one_round():
    producer = FakeProducer()
    delivery = ReliablePublisher(producer=producer, backoff=QUICK).deliver(messages(3))
    assert delivery.complete and [m.key for m, _ in delivery.acknowledged] == ["k0", "k1", "k2"]
    assert producer.acked == messages(3)  # topic, key, value and headers unchanged


def test_only_the_unacknowledged_are_resent_through_a_new_producer():
    made = [FakeProducer(refuse={"k1"}), FakeProducer()]
    factory = iter(made).__next__
    publisher = ReliablePublisher(factory=factory, backoff=QUICK)
    assert publisher.publish(messages(3))
    assert made[0].log == [("papers", "k0"), ("papers", "k1"), ("papers", "k2")]
    assert made[0].closed  # the failed producer is discarded ...
    assert made[1].log == [("papers", "k1")]  # ... and only k1 is sent again
    assert publisher.failures == 1


def test_a_producer_that_cannot_be_made_is_retried():
    made = iter([BrokerNotAvailableError(), FakeProducer()])

    def factory():
        item = next(made)
        if isinstance(item, Exception):
            raise item
        return item

    assert ReliablePublisher(factory=factory, backoff=QUICK).publish(messages(2))


def test_after_the_attempts_the_rest_is_reported_failed_with_its_error():
    producer = FakeProducer(refuse={"k0"}, times=5)
    delivery = ReliablePublisher(producer=producer, backoff=QUICK).deliver(messages(2), attempts=3)
    assert [m.key for m, _ in delivery.acknowledged] == ["k1"]
    assert [(m.key, error) for m, error in delivery.failed] == [("k0", "KafkaTimeoutError: KafkaTimeoutError: no ack")]
    assert producer.log.count(("papers", "k0")) == 3 and not producer.closed  # a caller's producer is kept


def test_a_message_too_large_fails_alone_and_is_not_resent():
    big = Message("papers", b"x" * 2000, key="big")
    producer = FakeProducer()
    delivery = ReliablePublisher(producer=producer, backoff=QUICK).deliver([big, *messages(2)])
    assert [m.key for m, _ in delivery.failed] == ["big"]
    assert [m.key for m, _ in delivery.acknowledged] == ["k0", "k1"]


def test_a_stop_while_waiting_to_resend_reports_not_published():
    stopping = threading.Event()
    stopping.set()
    producer = FakeProducer(refuse={"k0"}, times=100)
    publisher = ReliablePublisher(producer=producer, backoff=Backoff(60, 60))
    assert not publisher.publish(messages(1), stopping)
    assert producer.log == [("papers", "k0")]
