"""The wire: ``PoliteClient`` GETs one arXiv document at a time, spaced as arXiv asks,
waiting out Retry-After and backing off after other failures (``topictag.backoff``)."""

from __future__ import annotations

import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any, cast

import httpx
from tenacity import RetryCallState

from topictag.backoff import Backoff, attempt_error
from topictag.settings import ArxivSettings

log = logging.getLogger(__name__)


class ArxivError(RuntimeError):
    """arXiv refused a request, or kept failing after the retries; the message says which and why."""


class PoliteClient:
    """GETs XML documents from arXiv without ever asking faster than ``request_spacing_s``."""

    def __init__(
        self,
        settings: ArxivSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.settings = settings
        self._sleep = sleep
        self._clock = clock
        self._last_answer: float | None = None
        self.backoff = Backoff(settings.backoff_s, settings.backoff_max_s)
        agent = settings.user_agent + (f" (mailto:{settings.contact})" if settings.contact else "")
        self._http = httpx.Client(timeout=settings.timeout_s, follow_redirects=True, headers={"User-Agent": agent})

    def close(self) -> None:
        self._http.close()

    def get_xml(self, url: str, params: dict[str, Any]) -> ET.Element:
        """The parsed document at ``url?params``, retried as the module docstring says."""
        retries = self.settings.max_retries

        def log_retry(state: RetryCallState) -> None:
            log.warning("%s: %s; retry %d of %d in %.1f s", url, attempt_error(state),
                        state.attempt_number, retries, state.upcoming_sleep)

        retrying = self.backoff.retrying(
            _Retryable, attempts=retries + 1, wait=self._wait, sleep=self._sleep, before_sleep=log_retry
        )
        try:
            return retrying(self._get_once, url, params)
        except _Retryable as exc:
            raise ArxivError(f"{url} failed {retries + 1} times; the last time: {exc}") from None

    def _get_once(self, url: str, params: dict[str, Any]) -> ET.Element:
        self._keep_spacing()
        try:
            response = self._http.get(url, params=params)
        except httpx.TransportError as exc:
            raise _Retryable(f"{exc.__class__.__name__}: {exc}") from None
        finally:
            self._last_answer = self._clock()
        status = response.status_code
        if status == 200:
            try:
                # expat refuses entity-expansion bombs and ElementTree fetches no external entities.
                return ET.fromstring(response.content)
            except ET.ParseError as exc:  # e.g. a body cut short: worth asking again
                raise _Retryable(f"unparsable XML ({exc})") from None
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status}", retry_after_s=_retry_after_s(response))
        # A request arXiv will never answer (bad query, unknown verb): no point retrying.
        raise ArxivError(f"{response.request.url} answered HTTP {status}: {gist(response.text)}")

    def _wait(self, state: RetryCallState) -> float:
        """arXiv's Retry-After as sent; otherwise the back-off rule."""
        retry_after = cast(_Retryable, attempt_error(state)).retry_after_s  # it retries on _Retryable alone
        return retry_after if retry_after is not None else self.backoff.wait(state)

    def _keep_spacing(self) -> None:
        # Counted from the previous answer, not the previous send, so the server sees the gap whatever
        # the network and this process delay.
        if self._last_answer is not None:
            wait = self._last_answer + self.settings.request_spacing_s - self._clock()
            if wait > 0:
                self._sleep(wait)


class _Retryable(Exception):
    """A failure worth asking again for: a 5xx or 429, a connection error, a cut-off body."""

    def __init__(self, failure: str, retry_after_s: float | None = None):
        super().__init__(failure)
        self.retry_after_s = retry_after_s


def _retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


def gist(text: str, size: int = 300) -> str:
    return " ".join(text.split())[:size]
