"""A teacher behind any OpenAI-compatible chat endpoint, called with bounded concurrency,
timeouts, retries with exponential back-off and full jitter, and a circuit breaker."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx
from tenacity import retry_if_exception

from topictag import metrics
from topictag.backoff import Backoff
from topictag.schemas import Paper
from topictag.settings import TeacherSettings
from topictag.student.normalise import UNCLASSIFIED, normalise_topic
from topictag.student.prompt import SYSTEM, user_message
from topictag.teacher.base import Answer, Failure

log = logging.getLogger(__name__)

_RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class CircuitBreaker:
    """Opens after ``failures`` consecutive failures and refuses calls for ``reset_s``;
    then lets one trial call through (half-open): success closes it, failure re-opens it."""

    def __init__(self, failures: int, reset_s: float, clock=time.monotonic):
        self.failures = failures
        self.reset_s = reset_s
        self.clock = clock
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial_running = False
        self._lock = threading.Lock()

    @property
    def open(self) -> bool:
        return self._opened_at is not None

    def allow(self) -> bool:
        with self._lock:
            if self._opened_at is None:
                return True
            if self.clock() - self._opened_at >= self.reset_s and not self._trial_running:
                self._trial_running = True
                return True
            return False

    def success(self) -> None:
        with self._lock:
            self._consecutive, self._opened_at, self._trial_running = 0, None, False

    def failure(self) -> None:
        with self._lock:
            self._consecutive += 1
            self._trial_running = False
            if self._consecutive >= self.failures:
                if self._opened_at is None:
                    log.warning("teacher circuit breaker open after %d failures", self._consecutive)
                self._opened_at = self.clock()


class TeacherError(Exception):
    def __init__(self, reason: str, retryable: bool):
        super().__init__(reason)
        self.reason, self.retryable = reason, retryable


class OpenAITeacher:
    def __init__(self, settings: TeacherSettings):
        self.settings = settings
        self.model = settings.model
        self.breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_reset_s)
        self.backoff = Backoff(settings.backoff_s, settings.backoff_max_s)
        self.client = httpx.Client(
            base_url=settings.base_url.rstrip("/"),
            timeout=settings.timeout_s,
            headers={"Authorization": f"Bearer {settings.api_key.get_secret_value()}"},
        )
        self.pool = ThreadPoolExecutor(settings.max_concurrency, thread_name_prefix="teacher")

    def label(self, papers: Sequence[Paper]) -> list[Answer]:
        return list(self.pool.map(self._label_one, papers))

    def _label_one(self, paper: Paper) -> Answer:
        reasons: list[str] = []  # of the failed attempts, for a breaker that opens meanwhile

        def attempt() -> Answer:
            if not self.breaker.allow():
                return Failure("; ".join([*reasons[-1:], "teacher circuit breaker is open"]))
            try:
                return self._timed_ask(paper)
            except TeacherError as exc:
                reasons.append(exc.reason)
                raise

        retrying = self.backoff.retrying(
            retry_if_exception(lambda exc: isinstance(exc, TeacherError) and exc.retryable),
            attempts=self.settings.max_retries + 1,
        )
        try:
            return retrying(attempt)
        except TeacherError as exc:
            return Failure(exc.reason)

    def _timed_ask(self, paper: Paper) -> str:
        started = time.monotonic()
        try:
            topic = self._ask(paper)
        except TeacherError as exc:
            metrics.TEACHER_REQUEST_SECONDS.labels("failure").observe(time.monotonic() - started)
            metrics.TEACHER_FAILURES.labels(exc.reason.split(":", 1)[0]).inc()
            self.breaker.failure()
            raise
        metrics.TEACHER_REQUEST_SECONDS.labels("success").observe(time.monotonic() - started)
        self.breaker.success()
        return topic

    def _ask(self, paper: Paper) -> str:
        body = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": user_message(paper.abstract, paper.title)},
            ],
            "temperature": 0,
            "max_tokens": self.settings.max_tokens,
        }
        try:
            response = self.client.post("/chat/completions", json=body)
        except httpx.TimeoutException:
            raise TeacherError("timeout: no answer within the timeout", retryable=True) from None
        except httpx.TransportError as exc:
            raise TeacherError(f"unreachable: {exc.__class__.__name__}", retryable=True) from None
        if response.status_code != 200:
            raise TeacherError(f"http {response.status_code}", retryable=response.status_code in _RETRYABLE_STATUS)
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise TeacherError("garbage: not a chat completion", retryable=True) from None
        topic = normalise_topic(content or "")
        if topic == UNCLASSIFIED:
            raise TeacherError("garbage: empty answer", retryable=True)
        return topic

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.client.close()
