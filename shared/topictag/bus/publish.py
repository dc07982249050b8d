"""Publishing to Kafka: the one way topictag sends messages. Every send's acknowledgement is
checked; what the broker did not acknowledge is sent again under the one back-off rule.

When the broker goes away, or comes back without the producer state it had (a restarted
embedded broker, an unclean leader election), kafka-python's idempotent producer can end in
a fatal state where every later send fails. So after a failed round the messages not yet
acknowledged are sent again through a new producer (when the publisher makes its own):
at-least-once (a message acknowledged before the failure may be sent twice), never lost,
and a worker survives a broker restart without a restart of its own.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kafka import KafkaProducer
from kafka.errors import KafkaError, MessageSizeTooLargeError
from kafka.producer.future import RecordMetadata
from tenacity import RetryCallState

from topictag.backoff import Backoff, Stopped, attempt_error
from topictag.bus.kafka import make_producer
from topictag.settings import KafkaSettings

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 30.0
DEFAULT_BACKOFF = Backoff(1.0, 30.0)


@dataclass(frozen=True)
class Message:
    topic: str
    value: bytes
    key: str | bytes | None = None
    headers: list[tuple[str, bytes]] | None = None


@dataclass
class Delivery:
    """What became of a publish: each message acknowledged (with where it landed) or failed
    (with the last error)."""

    acknowledged: list[tuple[Message, RecordMetadata]] = field(default_factory=list)
    failed: list[tuple[Message, str]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.failed


class PublishFailed(KafkaError):
    """Some messages were not acknowledged after every attempt."""

    def __init__(self, delivery: Delivery):
        self.delivery = delivery
        message, error = delivery.failed[0]
        super().__init__(f"{len(delivery.failed)} message(s) not acknowledged (first: {message.topic}: {error})")


class _Unacknowledged(Exception):
    def __init__(self, error: str):
        super().__init__(error)
        self.error = error  # the first error of the round, for the log and the report


def _describe(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {exc}"


class ReliablePublisher:
    """Sends messages and waits for every acknowledgement, resending what was not
    acknowledged after a back-off (see the module docstring).

    With ``kafka`` (or ``factory``) the publisher makes its producers, lazily (a process
    that never publishes never needs the broker), and replaces one after a failure. Given
    only a ``producer``, it keeps using the caller's producer."""

    def __init__(
        self,
        kafka: KafkaSettings | None = None,
        producer: KafkaProducer | None = None,
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        factory: Callable[[], KafkaProducer] | None = None,
        send_timeout_s: float = SEND_TIMEOUT_S,
    ):
        if factory is None and kafka is not None:
            factory = functools.partial(make_producer, kafka)
        self.factory = factory
        self._producer = producer
        self._lock = threading.Lock()
        self.backoff = backoff
        self.send_timeout_s = send_timeout_s  # longest wait for acknowledgements before starting over
        self.failures = 0  # send rounds that failed and were retried

    @property
    def producer(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                if self.factory is None:
                    raise ValueError("a publisher without Kafka settings needs a producer")
                self._producer = self.factory()
            return self._producer

    def publish(self, messages: Sequence[Message], stopping: threading.Event | None = None) -> bool:
        """True once every message is acknowledged, retrying until then; False if
        ``stopping`` was set while waiting to retry."""
        return self.deliver(messages, stopping=stopping).complete

    def deliver(
        self, messages: Sequence[Message], *, stopping: threading.Event | None = None, attempts: int | None = None
    ) -> Delivery:
        """Send ``messages`` in up to ``attempts`` rounds (None: until all are acknowledged or
        ``stopping`` is set), each round resending what the previous one left."""
        delivery = Delivery()
        pending = list(messages)

        def send_round() -> None:
            nonlocal pending
            pending, error = self._send_round(pending, delivery)
            if pending:
                raise _Unacknowledged(error)

        def before_sleep(state: RetryCallState) -> None:
            self.failures += 1
            log.warning("%d messages not acknowledged (%s); resending in %.1f s",
                        len(pending), attempt_error(state), state.upcoming_sleep)
            self._discard()

        if pending:
            try:
                self.backoff.retrying(_Unacknowledged, attempts=attempts, stopping=stopping,
                                      before_sleep=before_sleep)(send_round)
            except (_Unacknowledged, Stopped) as exc:
                error = exc.error if isinstance(exc, _Unacknowledged) else "stopped before it was acknowledged"
                delivery.failed += [(m, error) for m in pending]
        return delivery

    def _send_round(self, messages: list[Message], delivery: Delivery) -> tuple[list[Message], str]:
        """One send of ``messages``. Records in ``delivery`` what was acknowledged or refused
        for good; returns the messages left to resend and the first error."""
        sent = []
        error: str | None = None
        tried = 0  # messages handed to send(), or refused by it for good
        try:
            producer = self.producer
            for m in messages:
                try:
                    sent.append((m, producer.send(m.topic, key=m.key, value=m.value, headers=m.headers)))
                except MessageSizeTooLargeError as exc:  # this message only, and for good
                    delivery.failed.append((m, _describe(exc)))
                tried += 1
            producer.flush(timeout=self.send_timeout_s)
        except KafkaError as exc:  # e.g. no metadata within max_block_ms: the broker is away
            error = _describe(exc)
        left: list[Message] = []
        deadline = time.monotonic() + self.send_timeout_s
        for m, future in sent:
            try:
                delivery.acknowledged.append((m, future.get(timeout=max(0.0, deadline - time.monotonic()))))
            except MessageSizeTooLargeError as exc:
                delivery.failed.append((m, _describe(exc)))
            except KafkaError as exc:
                error = error or _describe(exc)
                left.append(m)
        return left + messages[tried:], error or "not acknowledged"

    def _discard(self) -> None:
        """Close a failed producer of our own without waiting: what it still holds is resent
        through the next one. A caller's producer is kept."""
        if self.factory is None:
            return
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            producer.close(timeout=0)
        except Exception:  # kafka-python's close() flushes first and gives up on pending records
            log.debug("closing a failed producer", exc_info=True)
            # ... leaving its network thread running against the old broker: stop it, dropping
            # what it holds (all of it is resent).
            sender = getattr(producer, "_sender", None)
            if sender is not None:
                sender.force_close()

    def close(self, timeout: float = 10) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None and self.factory is not None:
            producer.close(timeout=timeout)

