"""The topic index's rows: clusters of near-duplicate topic texts, which cluster each text
joined, and the paper embeddings that semantic search reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import cast

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from topictag.store.engine import upsert, utcnow
from topictag.store.models import PaperEmbedding, PaperRecord, TopicCluster, TopicText, table_of


class TopicConflict(Exception):
    """Another writer clustered some of the same topic texts first; theirs stands."""


@dataclass(frozen=True)
class ClusterState:
    """A cluster as the index holds it; ``id`` None for one this batch creates."""

    id: int | None
    label: str
    centroid: bytes
    topics: int
    revision: int = 0


class TopicRepository:
    def __init__(self, engine: Engine):
        self.engine = engine

    def clusters(self, since_revision: int = -1) -> list[ClusterState]:
        """Clusters written after ``since_revision`` (all by default), by id."""
        query = select(TopicCluster).where(col(TopicCluster.revision) > since_revision).order_by(col(TopicCluster.id))
        with Session(self.engine) as s:
            rows = s.exec(query).all()
        return [ClusterState(r.id, r.label, r.centroid, r.topics, r.revision) for r in rows]

    def cluster_exists(self, cluster_id: int) -> bool:
        with Session(self.engine) as s:
            return s.get(TopicCluster, cluster_id) is not None

    def known_texts(self, topics: Sequence[str]) -> set[str]:
        with Session(self.engine) as s:
            return set(s.exec(select(TopicText.topic).where(col(TopicText.topic).in_(list(topics)))).all())

    def save_clusters(self, clusters: Sequence[ClusterState], texts: Sequence[tuple[str, int]]) -> tuple[list[int], int]:
        """In one transaction: write ``clusters`` (new ones get ids) and the topic texts that
        joined them, each ``(text, position in clusters)``, all at the next revision. Returns
        the clusters' ids and that revision."""
        with Session(self.engine) as s:
            revision = s.exec(select(func.coalesce(func.max(TopicCluster.revision), 0))).one() + 1
            ids: list[int] = []
            for state in clusters:
                if state.id is None:
                    row = TopicCluster(label=state.label, centroid=state.centroid, topics=state.topics,
                                       created_at=utcnow(), revision=revision)
                    s.add(row)
                    s.flush()
                else:
                    row = s.get_one(TopicCluster, state.id)
                    row.centroid, row.topics, row.revision = state.centroid, state.topics, revision
                    s.add(row)
                assert row.id is not None  # a stored row, or a new one after flush()
                ids.append(row.id)
            for text, position in texts:
                s.add(TopicText(topic=text, cluster_id=ids[position]))
            try:
                s.commit()
            except IntegrityError as exc:
                s.rollback()
                raise TopicConflict(str(exc.orig)) from exc
        return ids, revision

    def cluster_topic_counts(self, cluster_ids: Sequence[int] | None = None) -> list[tuple[int, str, int]]:
        """(cluster id, topic text, papers) for the topic texts papers carry now."""
        query = (
            select(TopicText.cluster_id, PaperRecord.topic, func.count().label("papers"))
            .join(TopicText, col(TopicText.topic) == col(PaperRecord.topic))
            .group_by(col(TopicText.cluster_id), col(PaperRecord.topic))
        )
        if cluster_ids is not None:
            query = query.where(col(TopicText.cluster_id).in_(list(cluster_ids)))
        with Session(self.engine) as s:
            rows = [(c, t, n) for c, t, n in s.exec(query).all()]
        return cast(list[tuple[int, str, int]], rows)  # the join on topic leaves out papers without one

    def newest_published(self) -> date | None:
        with Session(self.engine) as s:
            return s.exec(select(func.max(PaperRecord.published))).one()

    def clusters_published(self, after: date, until: date) -> list[tuple[date, int]]:
        """(publication day, cluster id) of each paper published in (after, until]."""
        query = (
            select(col(PaperRecord.published), TopicText.cluster_id)
            .join(TopicText, col(TopicText.topic) == col(PaperRecord.topic))
            .where(col(PaperRecord.published) > after, col(PaperRecord.published) <= until)
        )
        with Session(self.engine) as s:
            rows = [(d, c) for d, c in s.exec(query).all()]
        return cast(list[tuple[date, int]], rows)  # the range on published leaves out papers without a day

    def save_embeddings(self, vectors: dict[str, bytes]) -> None:
        if vectors:
            with self.engine.begin() as conn:
                conn.execute(upsert(self.engine, table_of(PaperEmbedding), ["arxiv_id"]),
                             [{"arxiv_id": k, "vector": v} for k, v in vectors.items()])

    def embeddings(self) -> list[tuple[str, bytes]]:
        with Session(self.engine) as s:
            return [(a, v) for a, v in s.exec(select(PaperEmbedding.arxiv_id, PaperEmbedding.vector)).all()]

    def embeddings_signature(self) -> tuple[int, datetime | None]:
        """Changes when embeddings are added or rewritten: a re-tag rewrites a vector without
        adding one, but it moves the newest tagged_at."""
        with Session(self.engine) as s:
            count = s.exec(select(func.count()).select_from(PaperEmbedding)).one()
            newest = s.exec(select(func.max(PaperRecord.tagged_at))).one()
        return count, newest
