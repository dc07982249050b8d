"""The store on SQLite and PostgreSQL: idempotent writes, history, pagination."""

from datetime import date, datetime, timedelta, timezone

import pytest

from topictag.schemas import Paper, TagResult
from topictag.store import InvalidCursor

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def tagged(i: int, topic: str = "Graph Neural Networks", version: str = "base", minutes: int | None = None):
    paper = Paper(arxiv_id=f"2601.{i:05d}", title=f"Paper {i}", abstract=f"Abstract {i}",
                  categories=["cs.LG"], published=date(2026, 1, 1) + timedelta(days=i % 10))
    result = TagResult(arxiv_id=paper.arxiv_id, topic=topic, adapter_version=version, model="m",
                       latency_ms=1.0, tagged_at=T0 + timedelta(minutes=i if minutes is None else minutes))
    return paper, result


def test_replayed_batch_creates_no_second_row(store):
    batch = [tagged(i) for i in range(5)]
    store.papers.save_tagged(batch)
    store.papers.save_tagged(batch)
    assert store.papers.count_tagged() == 5
    assert store.papers.count_assignments() == 5


def test_history_keeps_one_topic_per_adapter_version(store):
    store.papers.save_tagged([tagged(1, "Graph Learning", "base")])
    store.papers.save_tagged([tagged(1, "Graph Neural Networks for Molecules", "v1", minutes=5)])
    paper, history = store.papers.get("2601.00001")
    assert paper.topic == "Graph Neural Networks for Molecules"
    assert paper.adapter_version == "v1"
    assert [(h.adapter_version, h.topic) for h in history] == [
        ("base", "Graph Learning"),
        ("v1", "Graph Neural Networks for Molecules"),
    ]


def test_same_paper_twice_in_one_batch(store):
    store.papers.save_tagged([tagged(1, "A"), tagged(1, "B")])
    assert store.papers.count_tagged() == 1
    assert store.papers.get("2601.00001")[0].topic == "B"


def test_missing_paper_is_none(store):
    assert store.papers.get("nope") is None


def test_pages_walk_every_paper_once_newest_first(store):
    store.papers.save_tagged([tagged(i, minutes=i // 3) for i in range(23)])  # ties in tagged_at
    seen, cursor = [], None
    while True:
        page = store.papers.list_tagged(limit=5, cursor=cursor)
        seen += [p.arxiv_id for p in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == 23 and len(set(seen)) == 23
    stamps = [store.papers.get(i)[0].tagged_at for i in seen]
    assert stamps == sorted(stamps, reverse=True)


def test_exact_page_has_no_next_cursor(store):
    store.papers.save_tagged([tagged(i) for i in range(5)])
    assert store.papers.list_tagged(limit=5).next_cursor is None


def test_filters(store):
    store.papers.save_tagged([tagged(i, "Federated Learning" if i % 2 else "Graph 100%_Networks") for i in range(10)])
    assert len(store.papers.list_tagged(topic="federated", limit=50).items) == 5
    # LIKE wildcards in the filter are matched literally
    assert len(store.papers.list_tagged(topic="100%_", limit=50).items) == 5
    assert len(store.papers.list_tagged(topic="%", limit=50).items) == 5
    assert all(p.published >= date(2026, 1, 5) for p in store.papers.list_tagged(published_from=date(2026, 1, 5)).items)
    assert store.papers.list_tagged(adapter_version="v9").items == []


def test_sql_in_a_filter_is_just_text(store):
    store.papers.save_tagged([tagged(1)])
    assert store.papers.list_tagged(topic="'; DROP TABLE papers; --").items == []
    assert store.papers.count_tagged() == 1


def test_bad_cursor(store):
    with pytest.raises(InvalidCursor):
        store.papers.list_tagged(cursor="not-a-cursor")


def test_topic_counts(store):
    store.papers.save_tagged([tagged(i, "A" if i < 3 else "B") for i in range(5)])
    assert store.papers.topic_counts() == [("A", 3), ("B", 2)]
