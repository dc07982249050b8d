"""A live arXiv source: new papers from arXiv's search API or its OAI-PMH interface, published
to the ``papers`` topic the way ``topictag ingest FILE`` publishes a file.

From the wire inwards:

- ``client.PoliteClient`` GETs one document at a time, each at least ``request_spacing_s`` after
  the previous one was answered (arXiv asks for 3 s between requests); it waits a 503's (or 429's) Retry-After
  (seconds form), backs off (``topictag.backoff``: exponential, full jitter) after other 5xx, connection errors and
  unparsable bodies, and gives up with ``ArxivError`` after ``max_retries`` retries.
- ``parse.parse_atom_feed`` / ``parse.parse_oai_page`` turn one document into papers and malformed
  entries (no id, no abstract, a date or id that does not parse, over the paper limits);
  a malformed entry is counted and skipped, never the end of a pass.
- ``pages.ApiSource`` (``cat:`` query by submission date, start/max_results paging) and
  ``OaiSource`` (ListRecords per archive set from a datestamp, resumptionToken paging,
  then filtered to the categories) give the pages of one pass.
- ``ingest.SeenVersions`` is the dedup state: the highest version of each paper published so far,
  in a small JSON file (``TOPICTAG_ARXIV_SEEN_FILE``, default ``<data dir>/arxiv_seen.json``),
  written after each page the broker acknowledged. A paper seen at the same or a higher
  version is a duplicate; a newer version is published again. A restarted ``--follow``
  therefore publishes nothing twice.
- ``ingest.ArxivIngest`` runs a pass (``poll_once``) or passes on a schedule (``follow``); what it
  publishes goes through ``topictag.ingest.publish_records`` like any file.
"""

from topictag.sources.arxiv.client import ArxivError, PoliteClient
from topictag.sources.arxiv.ingest import ArxivIngest, PollSummary, SeenVersions, ingest_arxiv
from topictag.sources.arxiv.pages import ApiSource, OaiSource, oai_sets
from topictag.sources.arxiv.parse import ArxivPaper, MalformedEntry, parse_atom_feed, parse_oai_page, split_arxiv_id

__all__ = [
    "ApiSource", "ArxivError", "ArxivIngest", "ArxivPaper", "MalformedEntry", "OaiSource", "PoliteClient",
    "PollSummary", "SeenVersions", "ingest_arxiv", "oai_sets", "parse_atom_feed", "parse_oai_page", "split_arxiv_id",
]
