"""One arXiv document into papers: the search API's Atom feed and OAI-PMH pages. A
malformed entry is counted and skipped, never the end of a pass."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from email.utils import parsedate_to_datetime
from typing import Any

from pydantic import ValidationError

from topictag.schemas import (
    InvalidPaper,
    check_limits,
    describe_validation_error,
    paper_from_record,
)
from topictag.settings import PaperLimits
from topictag.sources.arxiv.client import ArxivError, gist

ATOM = "{http://www.w3.org/2005/Atom}"


ARXIV_ATOM = "{http://arxiv.org/schemas/atom}"


OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"


OAI = "{http://www.openarchives.org/OAI/2.0/}"


OAI_FORMATS = {"arXivRaw": "{http://arxiv.org/OAI/arXivRaw/}", "arXiv": "{http://arxiv.org/OAI/arXiv/}"}


# New-style ids (2503.11794) and old-style ones (hep-th/9901001, math.GT/0309136), maybe with a version.
_ARXIV_ID = re.compile(r"^(?P<id>\d{4}\.\d{4,5}|[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7})(?:v(?P<version>\d+))?$")


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
            raise ArxivError(f"arXiv API error: {gist(entry.findtext(f'{ATOM}summary') or raw_id)}")
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
        raise ArxivError(f"OAI-PMH error {error.get('code')}: {gist(error.text or '')}")
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
