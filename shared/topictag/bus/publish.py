"""Publishing a worker's output: every message acknowledged, or retried, never dropped.

A worker sends its results (tag results, dead letters, labels) and commits its input
offsets only once every send is acknowledged. When the broker goes away, or comes back
without the producer state it had (a restarted embedded broker, an unclean leader
election), kafka-python's idempotent producer can end in a fatal state where every later
send fails. So on any Kafka error the whole set of messages is sent again, after a
back-off, through a new producer: at-least-once (a message acknowledged before the
failure may be sent twice), never lost, and the worker survives without a restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kafka import KafkaProducer
from kafka.errors import KafkaError

from topictag.bus.kafka import make_producer
from topictag.settings import KafkaSettings

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Message:
    topic: str
    value: bytes
    key: str | bytes | None = None
    headers: list[tuple[str, bytes]] | None = None


class ReliablePublisher:
    """Sends batches of messages and waits for every acknowledgement, replacing the
    producer and resending after a Kafka error (see the module docstring)."""

    def __init__(
        self,
        kafka: KafkaSettings,
        producer: KafkaProducer | None = None,
        *,
        backoff_s: float = 1.0,
        backoff_max_s: float = 30.0,
        factory: Callable[[], KafkaProducer] | None = None,
        send_timeout_s: float = SEND_TIMEOUT_S,
    ):
        self.factory = factory or (lambda: make_producer(kafka))
        self._producer = producer
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.send_timeout_s = send_timeout_s  # longest wait for acknowledgements before starting over
        self.failures = 0  # send rounds that failed and were retried

    @property
    def producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = self.factory()
        return self._producer

    def publish(self, messages: Sequence[Message], stopping: threading.Event | None = None) -> bool:
        """True once every message is acknowledged; False if ``stopping`` was set while
        waiting to retry (nothing is known to be acknowledged then)."""
        if not messages:
            return True
        stopping = stopping or threading.Event()
        backoff = self.backoff_s
        while True:
            try:
                producer = self.producer
                futures = [producer.send(m.topic, key=m.key, value=m.value, headers=m.headers) for m in messages]
                producer.flush(timeout=self.send_timeout_s)
                for future in futures:
                    future.get(timeout=self.send_timeout_s)
                return True
            except KafkaError as exc:
                self.failures += 1
                log.warning("publishing %d messages failed (%s: %s); new producer, resending in %.1f s",
                            len(messages), exc.__class__.__name__, exc, backoff)
                self._discard()
                if stopping.wait(backoff):
                    return False
                backoff = min(backoff * 2, self.backoff_max_s)

    def _discard(self) -> None:
        """Close the failed producer without waiting: what it still holds is resent through
        the next one."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            producer.close(timeout=0)
        except Exception:  # noqa: BLE001 - kafka-python's close() flushes first and gives up on pending records
            log.debug("closing a failed producer", exc_info=True)
            # ... leaving its network thread running against the old broker: stop it, dropping
            # what it holds (all of it is resent).
            sender = getattr(producer, "_sender", None)
            if sender is not None:
                sender.force_close()

    def close(self, timeout: float = 10) -> None:
        if self._producer is not None:
            self._producer.close(timeout=timeout)
            self._producer = None
