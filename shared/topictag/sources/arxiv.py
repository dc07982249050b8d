"""A live arXiv source: new papers from arXiv's search API or its OAI-PMH interface, published
to the ``papers`` topic the way ``topictag ingest FILE`` publishes a file.

From the wire inwards:

- ``PoliteClient`` GETs one document at a time, each at least ``request_spacing_s`` after
  the previous one was answered (arXiv asks for 3 s between requests); it waits a 503's (or 429's) Retry-After
  (seconds form), backs off (``topictag.backoff``: exponential, full jitter) after other 5xx, connection errors and
  unparsable bodies, and gives up with ``ArxivError`` after ``max_retries`` retries.
- ``parse_atom_feed`` / ``parse_oai_page`` turn one document into papers and malformed
  entries (no id, no abstract, a date or id that does not parse, over the paper limits);
  a malformed entry is counted and skipped, never the end of a pass.
- ``ApiSource`` (``cat:`` query by submission date, start/max_results paging) and
  ``OaiSource`` (ListRecords per archive set from a datestamp, resumptionToken paging,
  then filtered to the categories) give the pages of one pass.
- ``SeenVersions`` is the dedup state: the highest version of each paper published so far,
  in a small JSON file (``TOPICTAG_ARXIV_SEEN_FILE``, default ``<data dir>/arxiv_seen.json``),
  written after each page the broker acknowledged. A paper seen at the same or a higher
  version is a duplicate; a newer version is published again. A restarted ``--follow``
  therefore publishes nothing twice.
- ``ArxivIngest`` runs a pass (``poll_once``) or passes on a schedule (``follow``); what it
  publishes goes through ``topictag.ingest.publish_records`` like any file.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import httpx
from pydantic import ValidationError
from tenacity import RetryCallState

from topictag.backoff import Backoff, attempt_error
from topictag.ingest import PublishError, PublishReport, publish_records
from topictag.schemas import (
    InvalidPaper,
    check_limits,
    describe_validation_error,
    paper_from_record,
)
from topictag.settings import ArxivSettings, PaperLimits, Settings

log = logging.getLogger(__name__)

ATOM = "{http://www.w3.org/2005/Atom}"
ARXIV_ATOM = "{http://arxiv.org/schemas/atom}"
OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"
OAI = "{http://www.openarchives.org/OAI/2.0/}"
OAI_FORMATS = {"arXivRaw": "{http://arxiv.org/OAI/arXivRaw/}", "arXiv": "{http://arxiv.org/OAI/arXiv/}"}
# Archives that are OAI-PMH sets of their own; every other archive (hep-th, astro-ph, ...) is physics:<archive>.
_TOP_LEVEL_SETS = {"cs", "econ", "eess", "math", "q-bio", "q-fin", "stat"}
# New-style ids (2503.11794) and old-style ones (hep-th/9901001, math.GT/0309136), maybe with a version.
_ARXIV_ID = re.compile(r"^(?P<id>\d{4}\.\d{4,5}|[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7})(?:v(?P<version>\d+))?$")


class ArxivError(RuntimeError):
    """arXiv refused a request, or kept failing after the retries; the message says which and why."""


@dataclass(frozen=True)
class ArxivPaper:
    arxiv_id: str  # without the version suffix, as in the papers files
    version: int | None  # None: the format does not say (OAI metadataPrefix=arXiv)
    title: str
    abstract: str
    categories: tuple[str, ...]
    primary_category: str
    first_seen_date: str | None  # YYYY-MM-DD the first version was submitted

    def to_record(self) -> dict[str, Any]:
        """The paper as a row of a papers file (what ``iter_paper_records`` yields), plus its version."""
        return {
            "arxiv_id": self.arxiv_id,
            "title": self.title,
            "abstract": self.abstract,
            "categories": " ".join(self.categories),
            "primary_category": self.primary_category,
            "first_seen_date": self.first_seen_date,
            "version": self.version,
        }


@dataclass(frozen=True)
class MalformedEntry:
    where: str  # the entry's id, or its position when it has none
    reason: str


Entry = ArxivPaper | MalformedEntry


# -- HTTP ---------------------------------------------------------------------------------


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
        raise ArxivError(f"{response.request.url} answered HTTP {status}: {_gist(response.text)}")

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


def _gist(text: str, size: int = 300) -> str:
    return " ".join(text.split())[:size]


# -- documents ----------------------------------------------------------------------------


def split_arxiv_id(text: str) -> tuple[str, int | None]:
    """``2503.11794v2`` (or an abs URL of it) as ``("2503.11794", 2)``."""
    match = _ARXIV_ID.match(text.strip().rsplit("/abs/", 1)[-1])
    if not match:
        raise InvalidPaper(f"not an arXiv id: {text.strip()[:80]!r}")
    return match["id"], int(match["version"]) if match["version"] else None


def make_paper(
    raw_id: str | None,
    *,
    version: int | None,
    title: str | None,
    abstract: str | None,
    categories: Iterable[str],
    first_seen: date | None,
    limits: PaperLimits,
) -> ArxivPaper:
    """A paper from one entry's fields, or InvalidPaper with the reason, checked by the same
    schema and limits the tagger applies."""
    if not raw_id or not raw_id.strip():
        raise InvalidPaper("no id")
    arxiv_id, id_version = split_arxiv_id(raw_id)
    categories = tuple(c for c in categories if c)
    paper = ArxivPaper(
        arxiv_id=arxiv_id,
        version=version or id_version,
        title=" ".join((title or "").split()),  # arXiv wraps long titles over indented lines
        abstract="\n".join(line.strip() for line in (abstract or "").strip().splitlines()),
        categories=categories,
        primary_category=categories[0] if categories else "",
        first_seen_date=first_seen.isoformat() if first_seen else None,
    )
    try:
        check_limits(paper_from_record(paper.to_record()), limits)
    except ValidationError as exc:
        raise InvalidPaper(describe_validation_error(exc)) from None
    return paper


def _day(text: str | None, parse: Callable[[str], date]) -> date | None:
    if not text or not text.strip():
        return None
    try:
        return parse(text.strip())
    except (ValueError, TypeError):
        raise InvalidPaper(f"unparsable date {text.strip()[:40]!r}") from None


def parse_atom_feed(root: ET.Element, limits: PaperLimits) -> tuple[int | None, list[Entry]]:
    """The total the query matched, and the entries of one page of the search API."""
    if root.tag != f"{ATOM}feed":
        raise ArxivError(f"expected an Atom feed, got <{root.tag}>")
    total_text = root.findtext(f"{OPENSEARCH}totalResults")
    entries: list[Entry] = []
    for position, entry in enumerate(root.findall(f"{ATOM}entry")):
        raw_id = entry.findtext(f"{ATOM}id")
        if raw_id and "/api/errors" in raw_id:  # how the API reports a query it cannot run
            raise ArxivError(f"arXiv API error: {_gist(entry.findtext(f'{ATOM}summary') or raw_id)}")
        primary = entry.find(f"{ARXIV_ATOM}primary_category")
        categories = [c.get("term", "") for c in entry.findall(f"{ATOM}category")]
        if primary is not None and (term := primary.get("term")) in categories:  # primary first, as in the files
            categories.remove(term)
            categories.insert(0, term)
        try:
            entries.append(make_paper(
                raw_id,
                version=None,
                title=entry.findtext(f"{ATOM}title"),
                abstract=entry.findtext(f"{ATOM}summary"),
                categories=categories,
                first_seen=_day(entry.findtext(f"{ATOM}published"), lambda s: date.fromisoformat(s[:10])),
                limits=limits,
            ))
        except InvalidPaper as exc:
            entries.append(MalformedEntry((raw_id or "").strip() or f"entry {position + 1} of the page", exc.reason))
    return (int(total_text) if total_text and total_text.strip().isdigit() else None), entries


def parse_oai_page(root: ET.Element, metadata_prefix: str, limits: PaperLimits) -> tuple[list[Entry], str | None]:
    """The records of one ListRecords response, and the resumption token of the next (None: the last)."""
    error = root.find(f"{OAI}error")
    if error is not None:
        if error.get("code") == "noRecordsMatch":  # nothing new in this set: an empty answer, not a failure
            return [], None
        raise ArxivError(f"OAI-PMH error {error.get('code')}: {_gist(error.text or '')}")
    listing = root.find(f"{OAI}ListRecords")
    if listing is None:
        raise ArxivError(f"no ListRecords in the OAI-PMH response (<{root.tag}>)")
    ns = OAI_FORMATS[metadata_prefix]
    entries: list[Entry] = []
    for position, record in enumerate(listing.findall(f"{OAI}record")):
        header = record.find(f"{OAI}header")
        if header is not None and header.get("status") == "deleted":  # no metadata to publish
            continue
        meta = record.find(f"{OAI}metadata/{ns}{metadata_prefix}")
        raw_id = meta.findtext(f"{ns}id") if meta is not None else None
        try:
            if meta is None:
                raise InvalidPaper(f"no {metadata_prefix} metadata")
            entries.append(_oai_paper(meta, ns, raw_id, limits))
        except InvalidPaper as exc:
            entries.append(MalformedEntry((raw_id or "").strip() or f"record {position + 1} of the page", exc.reason))
    token = (listing.findtext(f"{OAI}resumptionToken") or "").strip()
    return entries, token or None


def _oai_paper(meta: ET.Element, ns: str, raw_id: str | None, limits: PaperLimits) -> ArxivPaper:
    versions = meta.findall(f"{ns}version")  # arXivRaw only: one element per version, with its date
    if versions:
        numbered = []
        for v in versions:
            number = v.get("version", "").lstrip("v")
            if not number.isdigit():
                raise InvalidPaper(f"unparsable version {v.get('version')!r}")
            numbered.append((int(number), v.findtext(f"{ns}date")))
        version, first_seen = max(numbered)[0], _day(min(numbered)[1], lambda s: parsedate_to_datetime(s).date())
    else:
        version, first_seen = None, _day(meta.findtext(f"{ns}created"), date.fromisoformat)
    return make_paper(
        raw_id,
        version=version,
        title=meta.findtext(f"{ns}title"),
        abstract=meta.findtext(f"{ns}abstract"),
        categories=(meta.findtext(f"{ns}categories") or "").split(),  # the primary category comes first
        first_seen=first_seen,
        limits=limits,
    )


def oai_sets(categories: Iterable[str]) -> list[str]:
    """The OAI-PMH sets holding the categories: cs.LG -> cs, stat.ML -> stat, hep-th -> physics:hep-th."""
    sets: list[str] = []
    for category in categories:
        archive = category.split(".")[0]
        name = archive if archive in _TOP_LEVEL_SETS else f"physics:{archive}"
        if name not in sets:
            sets.append(name)
    return sets


# -- sources ------------------------------------------------------------------------------


class PaperSource(Protocol):
    def pages(self, since: date) -> Iterator[list[Entry]]: ...


class ApiSource:
    """Papers submitted since a day in any of the categories, newest first, from the search API."""

    def __init__(self, client: PoliteClient, settings: ArxivSettings, categories: list[str], limits: PaperLimits):
        self.client, self.settings, self.categories, self.limits = client, settings, categories, limits

    def pages(self, since: date) -> Iterator[list[Entry]]:
        until = _today() + timedelta(days=1)
        query = (
            "(" + " OR ".join(f"cat:{c}" for c in self.categories) + ")"
            f" AND submittedDate:[{since:%Y%m%d}0000 TO {until:%Y%m%d}2359]"
        )
        start = 0
        while True:
            root = self.client.get_xml(self.settings.api_url, {
                "search_query": query,
                "sortBy": "submittedDate",
                "sortOrder": "descending",
                "start": start,
                "max_results": self.settings.page_size,
            })
            total, entries = parse_atom_feed(root, self.limits)
            if not entries:
                return
            yield entries
            start += len(entries)
            if total is not None and start >= total:
                return


class OaiSource:
    """Records added or changed since a day in the sets holding the categories, by OAI-PMH.
    A new version changes a record's datestamp, so new versions of older papers come too."""

    def __init__(self, client: PoliteClient, settings: ArxivSettings, categories: list[str], limits: PaperLimits):
        self.client, self.settings, self.categories, self.limits = client, settings, categories, limits

    def pages(self, since: date) -> Iterator[list[Entry]]:
        prefix = self.settings.oai_metadata_prefix
        for set_spec in oai_sets(self.categories):
            params: dict[str, Any] = {
                "verb": "ListRecords", "metadataPrefix": prefix, "set": set_spec, "from": since.isoformat(),
            }
            while True:
                entries, token = parse_oai_page(self.client.get_xml(self.settings.oai_url, params), prefix, self.limits)
                if entries:
                    yield entries
                if not token:
                    break
                params = {"verb": "ListRecords", "resumptionToken": token}  # the token stands for the rest


# -- dedup and publishing -----------------------------------------------------------------


class SeenVersions:
    """The highest version of each paper published so far, kept in a JSON file
    (``{"2503.11794": 2, ...}``). Papers from a format without versions count as v1."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self._versions: dict[str, int] = json.loads(path.read_text()) if path.exists() else {}
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ArxivError(f"{path} is not a seen-versions file ({exc}); move it away to start afresh") from None

    def __len__(self) -> int:
        return len(self._versions)

    def is_new(self, paper: ArxivPaper) -> bool:
        return (paper.version or 1) > self._versions.get(paper.arxiv_id, 0)

    def remember(self, paper: ArxivPaper) -> None:
        self._versions[paper.arxiv_id] = max(self._versions.get(paper.arxiv_id, 0), paper.version or 1)

    def save(self) -> None:
        # Written whole and renamed into place: a kill mid-write leaves the previous state.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging = self.path.with_name(f".{self.path.name}.tmp")
        staging.write_text(json.dumps(self._versions, separators=(",", ":")))
        os.replace(staging, self.path)


@dataclass
class PollSummary:
    fetched: int = 0
    published: int = 0
    duplicates: int = 0
    malformed: int = 0
    other_categories: int = 0  # OAI sets are whole archives; the API may return cross-lists too

    def __str__(self) -> str:
        return ", ".join(f"{f.name.replace('_', ' ')} {getattr(self, f.name)}" for f in fields(self))


Publish = Callable[[list[dict[str, Any]]], PublishReport]


class ArxivIngest:
    """Polls one protocol for new papers in some categories and publishes them once per version."""

    def __init__(
        self,
        settings: ArxivSettings,
        limits: PaperLimits,
        seen: SeenVersions,
        publish: Publish,
        *,
        protocol: Literal["api", "oai"] = "api",
        categories: list[str] | None = None,
        since: date | None = None,
        limit: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.settings, self.seen, self.publish, self.limit = settings, seen, publish, limit
        self.categories = list(categories or settings.categories)
        self.since = since or _today() - timedelta(days=settings.lookback_days)
        self.client = PoliteClient(settings, sleep=sleep)
        source_class = ApiSource if protocol == "api" else OaiSource
        self.source: PaperSource = source_class(self.client, settings, self.categories, limits)
        self.total = PollSummary()
        self._passes = 0
        self._stopping = threading.Event()

    def close(self) -> None:
        self.client.close()

    def stop(self) -> None:
        """Ends a pass after the page being published and ``follow`` before its next pass; safe
        from a signal handler."""
        self._stopping.set()

    @property
    def done(self) -> bool:
        return self._stopping.is_set() or (self.limit is not None and self.total.published >= self.limit)

    def poll_once(self) -> PollSummary:
        """One pass: each page's new papers are published, and remembered once the broker
        acknowledged them, before the next page is fetched. The summary is added to ``total``
        as the pass goes, so it is right even when the pass fails or is interrupted."""
        # Later passes look back only lookback_days: a long --since is caught up on once.
        since = self.since
        if self._passes:
            since = max(since, _today() - timedelta(days=self.settings.lookback_days))
        self._passes += 1
        summary = PollSummary()
        wanted = set(self.categories)
        for entries in self.source.pages(since):
            fresh: dict[str, ArxivPaper] = {}
            for entry in entries:
                self._count(summary, "fetched")
                if isinstance(entry, MalformedEntry):
                    log.warning("skipped a malformed arXiv entry (%s): %s", entry.where, entry.reason)
                    self._count(summary, "malformed")
                elif not wanted.intersection(entry.categories):
                    self._count(summary, "other_categories")
                elif not self._is_news(entry, fresh):
                    self._count(summary, "duplicates")
                else:
                    if entry.arxiv_id in fresh:  # an older version earlier on the same page
                        self._count(summary, "duplicates")
                    fresh[entry.arxiv_id] = entry
            batch = list(fresh.values())
            if self.limit is not None:
                batch = batch[: self.limit - self.total.published]
            if batch:
                self._publish(batch, summary)
            if self.done:
                break
        return summary

    def follow(self, on_pass: Callable[[PollSummary], None] = lambda s: None) -> None:
        """Passes every ``follow_interval_s`` until ``stop()`` is called or ``limit`` papers
        are published. A pass that fails (arXiv away past the retries, the broker not
        acknowledging) is logged; the next pass tries again, and papers not acknowledged
        were not remembered, so they are published then."""
        while True:
            try:
                on_pass(self.poll_once())
            except (ArxivError, PublishError) as exc:
                log.error("arXiv pass failed: %s; next pass in %.0f s", exc, self.settings.follow_interval_s)
            if self.done or self._stopping.wait(self.settings.follow_interval_s):
                return

    def _publish(self, batch: list[ArxivPaper], summary: PollSummary) -> None:
        try:
            self.publish([p.to_record() for p in batch])
        except PublishError as exc:
            acknowledged = set(exc.report.ids)
            self._remember([p for p in batch if p.arxiv_id in acknowledged], summary)
            raise
        self._remember(batch, summary)

    def _is_news(self, paper: ArxivPaper, fresh: dict[str, ArxivPaper]) -> bool:
        """Not published before at this or a higher version, nor met at one earlier on this page."""
        earlier = fresh.get(paper.arxiv_id)
        return self.seen.is_new(paper) and (earlier is None or (paper.version or 1) > (earlier.version or 1))

    def _remember(self, papers: list[ArxivPaper], summary: PollSummary) -> None:
        for paper in papers:
            self.seen.remember(paper)
        self.seen.save()
        self._count(summary, "published", len(papers))

    def _count(self, summary: PollSummary, name: str, n: int = 1) -> None:
        setattr(summary, name, getattr(summary, name) + n)
        setattr(self.total, name, getattr(self.total, name) + n)


def _today() -> date:
    return datetime.now(UTC).date()


def ingest_arxiv(
    settings: Settings,
    *,
    protocol: Literal["api", "oai"] = "api",
    categories: list[str] | None = None,
    since: date | None = None,
    limit: int | None = None,
    follow: bool = False,
    on_pass: Callable[[PollSummary], None] = print,
    say: Callable[[str], None] = print,
) -> PollSummary:
    """Publish arXiv's new papers (and new versions) once each; with ``follow``, poll again
    every ``arxiv.follow_interval_s`` until SIGINT or SIGTERM (``on_pass`` after each pass,
``say`` for notices). Returns what was published;
    raises ArxivError or PublishError after closing what it opened."""
    from topictag.bus.kafka import ensure_topics, make_producer

    topic = settings.kafka.papers_topic
    ensure_topics(settings.kafka)
    producer = make_producer(settings.kafka)
    poller = ArxivIngest(settings.arxiv, settings.paper, SeenVersions(settings.arxiv_seen_file),
                         lambda records: publish_records(producer, topic, records),
                         protocol=protocol, categories=categories, since=since, limit=limit)

    def stop(signum, _frame):
        # A flag, not KeyboardInterrupt: an exception raised wherever the signal lands can be
        # caught on its way up (a follower once went on passing after Ctrl-C). A second
        # Ctrl-C interrupts at once.
        say(f"{signal.Signals(signum).name}: stopping after the page being published")
        poller.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if follow:
            poller.follow(on_pass=on_pass)
        else:
            poller.poll_once()
    except KeyboardInterrupt:
        say("stopped")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        poller.close()
        producer.close()
    return poller.total
