"""The pages of one pass: ``ApiSource`` (search API, by submission date) and ``OaiSource``
(OAI-PMH per archive set, filtered to the categories)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from topictag.settings import ArxivSettings, PaperLimits
from topictag.sources.arxiv.client import PoliteClient
from topictag.sources.arxiv.parse import Entry, parse_atom_feed, parse_oai_page

# Archives that are OAI-PMH sets of their own; every other archive (hep-th, astro-ph, ...) is physics:<archive>.
_TOP_LEVEL_SETS = {"cs", "econ", "eess", "math", "q-bio", "q-fin", "stat"}


def oai_sets(categories: Iterable[str]) -> list[str]:
    """The OAI-PMH sets holding the categories: cs.LG -> cs, stat.ML -> stat, hep-th -> physics:hep-th."""
    sets: list[str] = []
    for category in categories:
        archive = category.split(".")[0]
        name = archive if archive in _TOP_LEVEL_SETS else f"physics:{archive}"
        if name not in sets:
            sets.append(name)
    return sets


class PaperSource(Protocol):
    def pages(self, since: date) -> Iterator[list[Entry]]: ...


class ApiSource:
    """Papers submitted since a day in any of the categories, newest first, from the search API."""

    def __init__(self, client: PoliteClient, settings: ArxivSettings, categories: list[str], limits: PaperLimits):
        self.client, self.settings, self.categories, self.limits = client, settings, categories, limits

    def pages(self, since: date) -> Iterator[list[Entry]]:
        until = utc_today() + timedelta(days=1)
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


def utc_today() -> date:
    return datetime.now(UTC).date()
