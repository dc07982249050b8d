"""The live arXiv source against a local HTTP server that speaks arXiv's API (Atom) and
OAI-PMH (arXivRaw) with documents built from real papers of the stream, publishing to the
embedded broker; what reaches the topic is read back and decoded as the tagger does."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import escape, quoteattr

import pyarrow.parquet as pq
import pytest
from kafka import KafkaConsumer, TopicPartition
from typer.testing import CliRunner

from tests.conftest import REPO
from topictag.bus.kafka import client_config, ensure_topics, make_producer
from topictag.cli import app
from topictag.ingest import publish_records
from topictag.schemas import decode_paper
from topictag.settings import ArxivSettings, PaperLimits, get_settings
from topictag.sources.arxiv import ArxivError, ArxivIngest, SeenVersions

SPACING_S = 0.2
# Arrival times are taken on the server: a request that waited longer to be handled than
# the next one makes the gap look this much shorter than the client kept it.
ARRIVAL_JITTER_S = 0.05


# -- a local arXiv ------------------------------------------------------------------------


class LocalArxiv:
    """arXiv's /api/query and /oai2 on 127.0.0.1. The test sets the documents; scripted
    failures for a page are answered first; each request is recorded as it arrives."""

    def __init__(self):
        self.api_entries: list[str] = []  # <entry> elements in the order the API returns them
        self.oai_pages: dict[str, tuple[list[str], str]] = {}  # set or token -> (records, next token)
        self.failures: dict[str, list[tuple[int, dict[str, str]]]] = {}  # page key -> (status, headers), in order
        self.requests: list[tuple[float, str, dict[str, str]]] = []  # (monotonic time, path, query)
        arxiv = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlsplit(self.path)
                query = dict(parse_qsl(url.query))
                arxiv.requests.append((time.monotonic(), url.path, query))
                key = f"start={query.get('start')}" if url.path == "/api/query" else (
                    query.get("resumptionToken") or query.get("set", ""))
                if arxiv.failures.get(key):
                    status, headers = arxiv.failures[key].pop(0)
                    body = atom_error("malformed query") if status == 400 else b"busy, come back later"
                    return self.answer(status, body, headers)
                if url.path == "/api/query":
                    start, size = int(query["start"]), int(query["max_results"])
                    return self.answer(200, atom_feed(arxiv.api_entries, start, size))
                if url.path == "/oai2":
                    records, token = arxiv.oai_pages.get(key, (None, ""))
                    return self.answer(200, oai_document(records, token))
                self.answer(404, b"no such page")

            def answer(self, status, body, headers=None):
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def gaps(self) -> list[float]:
        times = [t for t, _, _ in self.requests]
        return [b - a for a, b in itertools.pairwise(times)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def atom_entry(row: dict, version: int = 1, *, with_abstract: bool = True, raw_id: str | None = None) -> str:
    """One search-API entry as arXiv writes it: versioned abs URL, wrapped title, indented summary."""
    abs_url = raw_id or f"http://arxiv.org/abs/{row['arxiv_id']}v{version}"
    title = row["title"].replace(": ", ":\n  ", 1)  # arXiv wraps long titles over indented lines
    summary = f"<summary>  {escape(row['abstract'])}\n</summary>" if with_abstract else ""
    categories = "".join(
        f'<category term="{c}" scheme="http://arxiv.org/schemas/atom"/>' for c in row["categories"].split()
    )
    return f"""
  <entry>
    <id>{abs_url}</id>
    <updated>{row['first_seen_date']}T18:00:00Z</updated>
    <published>{row['first_seen_date']}T17:59:59Z</published>
    <title>{escape(title)}</title>
    {summary}
    <author><name>A. Author</name></author>
    <link href="{abs_url}" rel="alternate" type="text/html"/>
    <arxiv:primary_category xmlns:arxiv="http://arxiv.org/schemas/atom" term="{row['primary_category']}"
      scheme="http://arxiv.org/schemas/atom"/>
    {categories}
  </entry>"""


def atom_feed(entries: list[str], start: int, size: int) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <link href="http://arxiv.org/api/query" rel="self" type="application/atom+xml"/>
  <title type="html">ArXiv Query: search_query=cat:cs.LG</title>
  <id>http://arxiv.org/api/local</id>
  <updated>2025-03-20T00:00:00-04:00</updated>
  <opensearch:totalResults xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">{len(entries)}</opensearch:totalResults>
  <opensearch:startIndex xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">{start}</opensearch:startIndex>
  <opensearch:itemsPerPage xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">{size}</opensearch:itemsPerPage>
  {''.join(entries[start:start + size])}
</feed>""".encode()


def atom_error(message: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <entry><id>http://arxiv.org/api/errors#incorrect_query</id><title>Error</title>
  <summary>{message}</summary></entry>
</feed>""".encode()


def raw_record(row: dict, versions: int = 1, *, with_abstract: bool = True, categories: str | None = None,
               deleted: bool = False) -> str:
    """One OAI-PMH record in arXivRaw, which lists every version with its date."""
    first = datetime.fromisoformat(row["first_seen_date"]).replace(hour=17, tzinfo=timezone.utc)
    header = (f'<header{" status=" + quoteattr("deleted") if deleted else ""}>'
              f"<identifier>oai:arXiv.org:{row['arxiv_id']}</identifier>"
              f"<datestamp>{(first + timedelta(days=versions)).date()}</datestamp><setSpec>cs</setSpec></header>")
    if deleted:
        return f"<record>{header}</record>"
    version_list = "".join(
        f'<version version="v{n}"><date>{format_datetime(first + timedelta(days=n - 1), usegmt=True)}</date>'
        f"<size>512kb</size><source_type>D</source_type></version>"
        for n in range(1, versions + 1)
    )
    abstract = f"<abstract>  {escape(row['abstract'])}\n</abstract>" if with_abstract else ""
    return f"""
  <record>{header}<metadata>
    <arXivRaw xmlns="http://arxiv.org/OAI/arXivRaw/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
      xsi:schemaLocation="http://arxiv.org/OAI/arXivRaw/ http://arxiv.org/OAI/arXivRaw.xsd">
      <id>{row['arxiv_id']}</id><submitter>A. Author</submitter>{version_list}
      <title>{escape(row['title'])}</title><authors>A. Author, B. Author</authors>
      <categories>{categories or row['categories']}</categories>
      <license>http://creativecommons.org/licenses/by/4.0/</license>{abstract}
    </arXivRaw>
  </metadata></record>"""


def oai_document(records: list[str] | None, token: str) -> bytes:
    head = ('<?xml version="1.0" encoding="UTF-8"?>\n<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">'
            '<responseDate>2025-03-20T00:00:00Z</responseDate>'
            '<request verb="ListRecords">http://export.arxiv.org/oai2</request>')
    if records is None:
        return (head + '<error code="noRecordsMatch">The combination of the values of the from, until, set and '
                'metadataPrefix arguments results in an empty list.</error></OAI-PMH>').encode()
    return (head + "<ListRecords>" + "".join(records)
            + f'<resumptionToken cursor="0" completeListSize="99">{token}</resumptionToken>'
            + "</ListRecords></OAI-PMH>").encode()


# -- fixtures and helpers -----------------------------------------------------------------


@pytest.fixture(scope="module")
def rows(bundle) -> list[dict]:
    """Papers of the stream whose title and abstract survive arXiv's line wrapping unchanged."""
    first = next(pq.ParquetFile(bundle / "arxiv_ml_stream.parquet").iter_batches(batch_size=300))
    frame = first.to_pandas()
    frame = frame[frame.title.map(lambda t: " ".join(t.split()) == t)]
    frame = frame[frame.abstract.map(lambda a: "\n".join(x.strip() for x in a.strip().splitlines()) == a)]
    return frame.to_dict(orient="records")


@pytest.fixture
def arxiv():
    server = LocalArxiv()
    yield server
    server.close()


@pytest.fixture
def publish(kafka):
    ensure_topics(kafka, kafka.papers_topic)
    producer = make_producer(kafka)
    yield lambda records: publish_records(producer, kafka.papers_topic, records)
    producer.close()


def arxiv_settings(server: LocalArxiv, **changes) -> ArxivSettings:
    return ArxivSettings(**{
        "api_url": f"{server.url}/api/query", "oai_url": f"{server.url}/oai2", "request_spacing_s": SPACING_S,
        "backoff_s": 0.3, "backoff_max_s": 1.0, "max_retries": 3, "page_size": 4, "follow_interval_s": 0.3,
    } | changes)


def read_papers(kafka, expected: int, timeout: float = 20.0) -> list[tuple[str, dict]]:
    """Every message on the papers topic (waits for ``expected``, then a little for any extra)."""
    consumer = KafkaConsumer(**client_config(kafka), group_id=None, auto_offset_reset="earliest",
                             enable_auto_commit=False)
    try:
        deadline = time.monotonic() + timeout
        while not consumer.partitions_for_topic(kafka.papers_topic) and time.monotonic() < deadline:
            time.sleep(0.1)
        consumer.assign([TopicPartition(kafka.papers_topic, p)
                         for p in consumer.partitions_for_topic(kafka.papers_topic)])
        got: list[tuple[str, dict]] = []
        settle = None
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                got += [(r.key.decode(), r) for r in records]
            if len(got) >= expected:
                settle = settle or time.monotonic() + 0.5
                if time.monotonic() > settle:
                    break
        for key, record in got:  # the tagger must accept every message as a paper
            assert decode_paper(record.value, PaperLimits()).arxiv_id == key
        return [(key, json.loads(record.value)) for key, record in got]
    finally:
        consumer.close()


def assert_is_row(message: dict, row: dict, version: int | None = None) -> None:
    assert message["title"] == row["title"] and message["abstract"] == row["abstract"]
    assert sorted(message["categories"].split()) == sorted(row["categories"].split())
    assert message["primary_category"] == row["primary_category"]
    assert message["published"] == row["first_seen_date"]  # first_seen_date, renamed as for a file
    assert version is None or message["version"] == version


# -- the search API -----------------------------------------------------------------------


def test_api_pages_through_failures_and_publishes_each_version_once(arxiv, rows, kafka, publish, tmp_path):
    good = rows[:10]
    arxiv.api_entries = [atom_entry(r) for r in good[:5]]
    arxiv.api_entries += [
        atom_entry(rows[10], with_abstract=False),  # no abstract
        atom_entry(rows[11], raw_id="http://arxiv.org/abs/not-an-arxiv-id"),  # an id that does not parse
    ]
    arxiv.api_entries += [atom_entry(r) for r in good[5:]]  # 12 entries: pages at start 0, 4, 8
    arxiv.failures = {"start=4": [(503, {"Retry-After": "1"})] * 2, "start=8": [(500, {})]}
    seen_file = tmp_path / "seen.json"

    poller = ArxivIngest(arxiv_settings(arxiv), PaperLimits(), SeenVersions(seen_file), publish,
                         protocol="api", categories=["cs.LG", "stat.ML"], since=date(2025, 3, 18))
    summary = poller.poll_once()
    poller.close()

    assert (summary.fetched, summary.published, summary.malformed, summary.duplicates) == (12, 10, 2, 0)
    queries = [q for _, _, q in arxiv.requests]
    assert [q["start"] for q in queries] == ["0", "4", "4", "4", "8", "8"]
    assert {q["max_results"] for q in queries} == {"4"} and {q["sortBy"] for q in queries} == {"submittedDate"}
    assert queries[0]["search_query"].startswith("(cat:cs.LG OR cat:stat.ML) AND submittedDate:[202503180000 TO ")
    gaps = arxiv.gaps()
    assert min(gaps) >= SPACING_S - ARRIVAL_JITTER_S, gaps
    assert gaps[1] >= 1 - ARRIVAL_JITTER_S and gaps[2] >= 1 - ARRIVAL_JITTER_S, gaps  # Retry-After: 1 after each 503

    # Next pass, by a restarted poller on the same seen file: one paper has a second version,
    # another comes again at its first, one is new, and one appears twice on a page.
    arxiv.requests.clear()
    arxiv.api_entries = [atom_entry(good[0], 2), atom_entry(rows[13]), atom_entry(rows[13], 2),
                         atom_entry(good[1], 1), atom_entry(rows[12])]
    poller = ArxivIngest(arxiv_settings(arxiv), PaperLimits(), SeenVersions(seen_file), publish,
                         protocol="api", categories=["cs.LG", "stat.ML"], since=date(2025, 3, 18))
    again = poller.poll_once()
    poller.close()
    assert (again.fetched, again.published, again.duplicates, again.malformed) == (5, 3, 2, 0)
    assert min(arxiv.gaps()) >= SPACING_S - ARRIVAL_JITTER_S

    by_id = {r["arxiv_id"]: r for r in rows}
    versions: dict[str, list[int]] = {}
    for key, message in read_papers(kafka, expected=13):  # one key, one partition: versions in order
        assert_is_row(message, by_id[key])
        versions.setdefault(key, []).append(message["version"])
    assert versions == {r["arxiv_id"]: [1] for r in good + [rows[12]]} | {
        good[0]["arxiv_id"]: [1, 2], rows[13]["arxiv_id"]: [2]}
    assert json.loads(seen_file.read_text())[good[0]["arxiv_id"]] == 2


def test_retries_are_bounded_and_the_error_says_why(arxiv, rows, publish, tmp_path):
    arxiv.api_entries = [atom_entry(rows[0])]
    arxiv.failures = {"start=0": [(500, {})] * 5}
    seen = SeenVersions(tmp_path / "seen.json")
    poller = ArxivIngest(arxiv_settings(arxiv, max_retries=2), PaperLimits(), seen, publish, protocol="api")
    with pytest.raises(ArxivError, match=r"failed 3 times; the last time: HTTP 500"):
        poller.poll_once()
    assert len(arxiv.requests) == 3 and len(seen) == 0

    arxiv.requests.clear()
    arxiv.failures = {"start=0": [(400, {})]}  # a query arXiv cannot run is not asked again
    with pytest.raises(ArxivError, match="HTTP 400: .*malformed query"):
        poller.poll_once()
    assert len(arxiv.requests) == 1
    poller.close()

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/api/query"
    poller = ArxivIngest(arxiv_settings(arxiv, api_url=closed, max_retries=1), PaperLimits(), seen, publish)
    with pytest.raises(ArxivError, match="failed 2 times; the last time: ConnectError"):
        poller.poll_once()
    poller.close()


# -- OAI-PMH ------------------------------------------------------------------------------


def test_oai_follows_resumption_tokens_per_set_and_filters_categories(arxiv, rows, kafka, publish, tmp_path):
    cs = [r for r in rows if "cs.LG" in r["categories"].split()]
    stat = next(r for r in rows if "stat.ML" in r["categories"].split() and r not in cs[:7])
    arxiv.oai_pages = {
        "cs": ([raw_record(cs[0], versions=2), raw_record(cs[1]), raw_record(cs[2], categories="cs.CV"),
                raw_record(cs[3], deleted=True), raw_record(cs[4], with_abstract=False)], "cs|2"),
        "cs|2": ([raw_record(cs[5]), raw_record(cs[6])], ""),
        "stat": ([raw_record(stat), raw_record(cs[0], versions=2)], ""),  # cs[0] again, same version
        # no page for "math": the server says noRecordsMatch
    }
    arxiv.failures = {"cs|2": [(503, {"Retry-After": "1"})]}
    poller = ArxivIngest(arxiv_settings(arxiv), PaperLimits(), SeenVersions(tmp_path / "seen.json"), publish,
                         protocol="oai", categories=["cs.LG", "stat.ML", "math.ST"], since=date(2025, 3, 18))
    summary = poller.poll_once()
    poller.close()

    assert (summary.fetched, summary.published, summary.duplicates, summary.malformed, summary.other_categories) == (
        8, 5, 1, 1, 1)
    queries = [q for _, _, q in arxiv.requests]
    first = {"verb": "ListRecords", "metadataPrefix": "arXivRaw", "from": "2025-03-18"}
    assert queries == [first | {"set": "cs"}, {"verb": "ListRecords", "resumptionToken": "cs|2"},
                       {"verb": "ListRecords", "resumptionToken": "cs|2"}, first | {"set": "stat"},
                       first | {"set": "math"}]
    gaps = arxiv.gaps()
    assert min(gaps) >= SPACING_S - ARRIVAL_JITTER_S and gaps[1] >= 1 - ARRIVAL_JITTER_S, gaps

    messages = dict(read_papers(kafka, expected=5))
    assert sorted(messages) == sorted(r["arxiv_id"] for r in [cs[0], cs[1], cs[5], cs[6], stat])
    assert_is_row(messages[cs[0]["arxiv_id"]], cs[0], version=2)  # the first version's date, the last version
    assert_is_row(messages[stat["arxiv_id"]], stat, version=1)


# -- the command --------------------------------------------------------------------------


@pytest.fixture
def cli_env(kafka, monkeypatch, tmp_path):
    env = {"TOPICTAG_KAFKA_BOOTSTRAP": kafka.bootstrap, "TOPICTAG_KAFKA_PAPERS_TOPIC": kafka.papers_topic,
           "TOPICTAG_DATA_DIR": str(tmp_path / "data")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()


def test_ingest_file_keeps_its_short_form(cli_env, bundle, kafka):
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", str(bundle / "papers_sample.parquet"), "--limit", "3"])
    assert result.exit_code == 0, result.output
    assert f"published 3 papers to {kafka.papers_topic}" in result.output
    assert len(read_papers(kafka, expected=3)) == 3

    help_text = runner.invoke(app, ["ingest", "--help"]).output
    assert "topictag ingest FILE [--limit N]" in help_text and "topictag ingest arxiv" in help_text
    assert "file " in help_text and "arxiv " in help_text  # both listed as commands


def test_stop_ends_the_pass_after_the_page_being_published_and_the_follow(arxiv, rows, publish, tmp_path):
    arxiv.api_entries = [atom_entry(r) for r in rows[:12]]  # pages of 4: three pages
    seen = SeenVersions(tmp_path / "seen.json")
    poller = ArxivIngest(arxiv_settings(arxiv), PaperLimits(), seen, publish,
                         protocol="api", categories=["cs.LG", "stat.ML"], since=date(2025, 3, 18))
    published = []

    def publish_then_stop(records):
        publish(records)
        published.extend(records)
        poller.stop()  # as the CLI's signal handler does, mid-pass

    poller.publish = publish_then_stop
    passes = []
    follower = threading.Thread(target=poller.follow, kwargs={"on_pass": passes.append})
    follower.start()
    follower.join(timeout=30)
    poller.close()
    assert not follower.is_alive()
    assert len(passes) == 1 and passes[0].published == len(published) == 4  # the first page only
    assert [q["start"] for _, _, q in arxiv.requests] == ["0"]
    assert len(json.loads((tmp_path / "seen.json").read_text())) == 4  # what was published is remembered


def test_cli_follows_until_ctrl_c_and_a_restart_publishes_nothing_again(arxiv, rows, cli_env, kafka):
    arxiv.api_entries = [atom_entry(r) for r in rows[:3]]
    env = os.environ | cli_env | {
        "TOPICTAG_ARXIV_API_URL": f"{arxiv.url}/api/query", "TOPICTAG_ARXIV_REQUEST_SPACING_S": "0.1",
        "TOPICTAG_ARXIV_PAGE_SIZE": "2", "TOPICTAG_ARXIV_FOLLOW_INTERVAL_S": "0.3",
    }
    command = [sys.executable, "-m", "topictag", "ingest", "arxiv", "--category", "cs.LG", "--category", "stat.ML"]
    follower = subprocess.Popen([*command, "--follow"], env=env, cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        assert len(read_papers(kafka, expected=3)) == 3
        arxiv.api_entries.insert(0, atom_entry(rows[0], 2))  # a new version arrives while it follows
        assert len(read_papers(kafka, expected=4)) == 4
        passes_before = len(arxiv.requests)
        deadline = time.monotonic() + 20
        while len(arxiv.requests) < passes_before + 2 and time.monotonic() < deadline:
            time.sleep(0.1)  # at least one more pass that finds nothing new
        follower.send_signal(signal.SIGINT)
        out, err = follower.communicate(timeout=30)
    finally:
        follower.kill()
    assert follower.returncode == 0, err
    assert out.count("pass: ") >= 3, out
    assert out.strip().splitlines()[-1].startswith(f"arxiv api to {kafka.papers_topic}: fetched ")
    assert "published 4," in out.strip().splitlines()[-1], out

    again = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert "published 0, duplicates 4, malformed 0" in again.stdout, again.stdout
    assert len(read_papers(kafka, expected=4)) == 4
