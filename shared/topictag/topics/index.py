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
from typing import cast

import numpy as np

from topictag.embeddings import embed
from topictag.schemas import Paper, TagResult
from topictag.store import Store
from topictag.store.topics import ClusterState, TopicConflict

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
        clusters = self.store.topics.clusters()
        self._ids = cast(list[int], [c.id for c in clusters])  # stored clusters have ids
        self._sizes = [c.topics for c in clusters]
        self._centroids = np.stack([from_blob(c.centroid) for c in clusters]) if clusters else np.zeros((0, 384), np.float32)
        self._loaded = True

    def add(self, tagged: Sequence[tuple[Paper, TagResult]]) -> None:
        """Index a stored batch: cluster its new topic texts and embed its papers."""
        if not tagged:
            return
        with self._lock:
            if not self._loaded:
                self._load()
            for _ in range(3):
                try:
                    self._cluster_new_topics({r.topic for _, r in tagged})
                    break
                except TopicConflict:
                    # Another tagger clustered some of these texts first: theirs stand. Read
                    # its clusters and place the texts still new.
                    self._load()
            else:
                log.warning("topic texts left unclustered after 3 conflicts; `topictag reindex` places them")
            vectors = embed([paper_text(p.title, r.topic) for p, r in tagged])
            self.store.topics.save_embeddings({p.arxiv_id: to_blob(v) for (p, _), v in zip(tagged, vectors)})

    def _cluster_new_topics(self, topics: set[str]) -> None:
        """Each new text joins the nearest cluster, or starts one; the index's state changes
        only once the store has taken the change."""
        new = sorted(topics - self.store.topics.known_texts(sorted(topics)))
        if not new:
            return
        ids: list[int | None] = list(self._ids)
        sizes, centroids = list(self._sizes), self._centroids.copy()
        labels: dict[int, str] = {}
        joined: list[tuple[str, int]] = []  # (text, position in ids)
        for topic, v in zip(new, embed(new)):
            sims = centroids @ v if len(ids) else np.array([])
            best = int(np.argmax(sims)) if sims.size else -1
            if best >= 0 and sims[best] >= self.threshold:
                n = sizes[best]
                centroid = (centroids[best] * n + v) / (n + 1)
                centroids[best], sizes[best] = centroid / np.linalg.norm(centroid), n + 1
                joined.append((topic, best))
            else:
                ids.append(None)
                sizes.append(1)
                centroids = np.vstack([centroids, v[None, :]])
                labels[len(ids) - 1] = topic
                joined.append((topic, len(ids) - 1))
        changed = sorted({position for _, position in joined})
        states = [ClusterState(ids[p], labels.get(p, ""), to_blob(centroids[p]), sizes[p]) for p in changed]
        saved = self.store.topics.save_clusters(states, [(topic, changed.index(p)) for topic, p in joined])
        for position, cluster_id in zip(changed, saved):
            ids[position] = cluster_id
        self._ids, self._sizes, self._centroids = cast(list[int], ids), sizes, centroids  # new ones have theirs now
