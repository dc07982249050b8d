"""The topic index: clusters of near-duplicate topics and paper embeddings for search.

Both are built incrementally as papers are tagged: a new topic text joins the cluster
whose centroid it is closest to (cosine similarity at or above the threshold) or starts
a new one; a cluster's id never changes. "Anomaly Detection in Time Series" and "Time
Series Anomaly Detection" (cosine 0.97) share a cluster; "Graph Neural Networks for
Molecules" and "Federated Learning" (0.15) do not.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime, timezone

import numpy as np
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from topictag.embeddings import embed
from topictag.schemas import Paper, TagResult
from topictag.store.models import PaperEmbedding, TopicCluster, TopicText
from topictag.store.repository import Store

log = logging.getLogger(__name__)


def paper_text(title: str, topic: str) -> str:
    return f"{topic}. {title}" if title else topic


def to_blob(v: np.ndarray) -> bytes:
    return np.asarray(v, dtype=np.float32).tobytes()


def from_blob(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype=np.float32)


class TopicIndex:
    def __init__(self, store: Store, threshold: float = 0.85):
        self.store = store
        self.threshold = threshold
        self._lock = threading.Lock()
        self._ids: list[int] = []
        self._centroids = np.zeros((0, 384), dtype=np.float32)
        self._sizes: list[int] = []
        self._loaded = False

    def _load(self) -> None:
        with Session(self.store.engine) as s:
            rows = s.exec(select(TopicCluster).order_by(TopicCluster.id)).all()
        self._ids = [r.id for r in rows]
        self._sizes = [r.topics for r in rows]
        self._centroids = np.stack([from_blob(r.centroid) for r in rows]) if rows else np.zeros((0, 384), np.float32)
        self._loaded = True

    def add(self, tagged: Sequence[tuple[Paper, TagResult]]) -> None:
        """Index a stored batch: cluster its new topic texts and embed its papers."""
        if not tagged:
            return
        with self._lock:
            if not self._loaded:
                self._load()
            self._cluster_new_topics({r.topic for _, r in tagged})
            vectors = embed([paper_text(p.title, r.topic) for p, r in tagged])
            rows = {p.arxiv_id: to_blob(v) for (p, _), v in zip(tagged, vectors)}
            self.store.upsert(PaperEmbedding.__table__, ["arxiv_id"], [{"arxiv_id": k, "vector": v} for k, v in rows.items()])

    def _cluster_new_topics(self, topics: set[str]) -> None:
        with Session(self.store.engine) as s:
            known = set(s.exec(select(TopicText.topic).where(TopicText.topic.in_(topics))).all())
        new = sorted(topics - known)
        if not new:
            return
        vectors = embed(new)
        now = datetime.now(timezone.utc)
        with Session(self.store.engine) as s:
            for topic, v in zip(new, vectors):
                sims = self._centroids @ v if len(self._ids) else np.array([])
                best = int(np.argmax(sims)) if sims.size else -1
                if best >= 0 and sims[best] >= self.threshold:
                    cluster = s.get(TopicCluster, self._ids[best])
                    n = self._sizes[best]
                    centroid = (self._centroids[best] * n + v) / (n + 1)
                    centroid /= np.linalg.norm(centroid)
                    cluster.centroid, cluster.topics = to_blob(centroid), n + 1
                    self._centroids[best], self._sizes[best] = centroid, n + 1
                else:
                    cluster = TopicCluster(label=topic, centroid=to_blob(v), topics=1, created_at=now)
                    s.add(cluster)
                    s.flush()
                    self._ids.append(cluster.id)
                    self._sizes.append(1)
                    self._centroids = np.vstack([self._centroids, v[None, :]])
                s.add(cluster)
                s.add(TopicText(topic=topic, cluster_id=cluster.id))
            try:
                s.commit()
            except IntegrityError:
                # Another tagger clustered some of these texts first: theirs stands; reload.
                s.rollback()
                self._load()
