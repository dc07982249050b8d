"""The embedded broker: starts, serves the Kafka protocol, refuses a taken port, stops."""

import socket

import pytest

from topictag.bus.embedded import BrokerError, EmbeddedBroker
from topictag.bus.kafka import ensure_topics, make_consumer, make_producer


def test_round_trip_with_commit(kafka):
    ensure_topics(kafka)
    producer = make_producer(kafka)
    for i in range(10):
        producer.send(kafka.papers_topic, key=f"k{i}", value=f"v{i}".encode())
    producer.flush()
    producer.close()
    consumer = make_consumer(kafka, "g1", kafka.papers_topic)
    got = []
    for _ in range(20):
        for records in consumer.poll(timeout_ms=500).values():
            got += records
        if len(got) >= 10:
            break
    consumer.commit()
    consumer.close()
    assert sorted(r.value for r in got) == sorted(f"v{i}".encode() for i in range(10))
    again = make_consumer(kafka, "g1", kafka.papers_topic)
    assert not any(again.poll(timeout_ms=2000).values())  # committed: nothing to replay
    again.close()


def test_taken_port_is_refused():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(BrokerError, match="already in use"):
            EmbeddedBroker(port=s.getsockname()[1]).start()


def test_stop_ends_the_process():
    b = EmbeddedBroker().start()
    assert b.alive()
    b.stop()
    assert not b.alive()
    assert b.process.returncode is not None
