"""Passes over arXiv, deduplicated by version (``SeenVersions``) and published to the
papers topic: ``ArxivIngest`` and ``ingest_arxiv``, what ``topictag ingest arxiv`` runs."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

from topictag.ingest import PublishError, PublishReport, publish_records
from topictag.settings import ArxivSettings, PaperLimits, Settings
from topictag.sources.arxiv.client import ArxivError, PoliteClient
from topictag.sources.arxiv.pages import ApiSource, OaiSource, PaperSource, utc_today
from topictag.sources.arxiv.parse import ArxivPaper, MalformedEntry

log = logging.getLogger(__name__)


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
        self.since = since or utc_today() - timedelta(days=settings.lookback_days)
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
            since = max(since, utc_today() - timedelta(days=self.settings.lookback_days))
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
