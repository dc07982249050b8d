"""The topic index: clusters of near-duplicate topics and paper embeddings for search.

Both are built incrementally as papers are tagged: a new topic text joins the cluster
whose centroid it is closest to (cosine similarity at or above the threshold) or starts
a new one; a cluster's id never changes. "Anomaly Detection in Time Series" and "Time
Series Anomaly Detection" (cosine 0.97) share a cluster; "Graph Neural Networks for
Molecules" and "Federated Learning" (0.15) do not.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import cast

import numpy as np

from topictag.embeddings import embed
from topictag.schemas import Paper, TagResult
from topictag.store import Store
from topictag.store.leases import held
from topictag.store.topics import ClusterState, TopicConflict

log = logging.getLogger(__name__)


def paper_text(title: str, topic: str) -> str:
    return f"{topic}. {title}" if title else topic


def to_blob(v: np.ndarray) -> bytes:
    return np.asarray(v, dtype=np.float32).tobytes()


def from_blob(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype=np.float32)


# The store lease a tagger holds while it clusters: replicas take turns, each deciding against
# every cluster written before its turn. Renewed while a turn lasts, so the TTL only bounds
# how long a crashed holder stalls the others.
CLUSTERING_LEASE = "topic-clusters"
CLUSTERING_LEASE_TTL_S = 6.0


class TopicIndex:
    """One set of clusters however many taggers run: a tagger clusters a batch's new topic
    texts while it holds ``CLUSTERING_LEASE``, after reading the clusters other taggers wrote
    since its last look (by their revision), so no two replicas start separate clusters for
    one topic family."""

    def __init__(self, store: Store, threshold: float = 0.85):
        self.store = store
        self.threshold = threshold
        self._lock = threading.Lock()
        self._ids: list[int] = []
        self._position: dict[int, int] = {}  # cluster id -> its row in _centroids
        self._centroids = np.zeros((0, 384), dtype=np.float32)
        self._sizes: list[int] = []
        self._revision = -1  # the newest cluster revision read
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def _sync(self) -> None:
        """Read the clusters written since the last look (all of them the first time)."""
        added: list[np.ndarray] = []
        for cluster in self.store.topics.clusters(since_revision=self._revision):
            assert cluster.id is not None  # stored clusters have ids
            vector = from_blob(cluster.centroid)
            if cluster.id in self._position:
                self._centroids[self._position[cluster.id]] = vector
                self._sizes[self._position[cluster.id]] = cluster.topics
            else:
                self._position[cluster.id] = len(self._ids)
                self._ids.append(cluster.id)
                self._sizes.append(cluster.topics)
                added.append(vector)
            self._revision = max(self._revision, cluster.revision)
        if added:
            self._centroids = np.vstack([self._centroids, *[v[None, :] for v in added]])

    @contextmanager
    def _turn(self) -> Iterator[None]:
        while True:
            with held(self.store.leases, CLUSTERING_LEASE, self._holder, CLUSTERING_LEASE_TTL_S) as got:
                if got:
                    yield
                    return
            time.sleep(0.05)

    def add(self, tagged: Sequence[tuple[Paper, TagResult]]) -> None:
        """Index a stored batch: cluster its new topic texts and embed its papers."""
        if not tagged:
            return
        topics = {r.topic for _, r in tagged}
        with self._lock:
            new = topics - self.store.topics.known_texts(sorted(topics))
            if new:  # a turn only for texts not clustered yet
                with self._turn():
                    self._sync()
                    try:
                        self._cluster_new_topics(new)
                    except TopicConflict:
                        # Written by a holder whose lease had lapsed: theirs stand; place the rest.
                        self._sync()
                        self._cluster_new_topics(new)
            vectors = embed([paper_text(p.title, r.topic) for p, r in tagged])
            self.store.topics.save_embeddings({p.arxiv_id: to_blob(v) for (p, _), v in zip(tagged, vectors)})

    def _cluster_new_topics(self, topics: set[str]) -> None:
        """Each text still new (checked again: another tagger may have placed it before our
        turn) joins the nearest cluster, or starts one; the index's state changes only once
        the store has taken the change."""
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
        saved, revision = self.store.topics.save_clusters(states, [(topic, changed.index(p)) for topic, p in joined])
        for position, cluster_id in zip(changed, saved):
            ids[position] = cluster_id
            self._position[cluster_id] = position
        self._ids, self._sizes, self._centroids = cast(list[int], ids), sizes, centroids  # new ones have theirs now
        if revision == self._revision + 1:  # nothing else was written since our look
            self._revision = revision
