"""Reading the topic index: clusters with their counts, weekly trends, semantic search."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from topictag.embeddings import embed
from topictag.hardware import cpu_bf16
from topictag.store import Store
from topictag.store.models import PaperRecord

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ClusterSummary:
    id: int
    label: str
    papers: int
    topics: list[tuple[str, int]]


def _cluster_counts(store: Store, cluster_ids: list[int] | None = None) -> pd.DataFrame:
    """Papers per (cluster, topic text)."""
    return pd.DataFrame(store.topics.cluster_topic_counts(cluster_ids), columns=["cluster_id", "topic", "papers"])


def _summaries(counts: pd.DataFrame, top_topics: int) -> list[ClusterSummary]:
    out = []
    for cid, group in counts.groupby("cluster_id"):
        group = group.sort_values(["papers", "topic"], ascending=[False, True])
        pairs = list(zip(group["topic"], group["papers"].astype(int)))
        # The most common wording represents the cluster.
        out.append(ClusterSummary(int(cid), pairs[0][0], int(group["papers"].sum()), pairs[:top_topics]))
    return sorted(out, key=lambda c: (-c.papers, c.id))


def clusters(store: Store, limit: int = 50, offset: int = 0, top_topics: int = 5) -> list[ClusterSummary]:
    return _summaries(_cluster_counts(store), top_topics)[offset : offset + limit]


def cluster(store: Store, cluster_id: int) -> ClusterSummary | None:
    if not store.topics.cluster_exists(cluster_id):
        return None
    found = _summaries(_cluster_counts(store, [cluster_id]), top_topics=100)
    return found[0] if found else ClusterSummary(cluster_id, "", 0, [])


def trends(store: Store, weeks: int = 12, limit: int = 10, today: date | None = None) -> dict:
    """Papers per cluster per week (by publication day) over the last ``weeks`` weeks of
    data, and the clusters rising fastest (last third of the window vs the rest)."""
    last = today or store.topics.newest_published()
    if last is None:
        return {"weeks": [], "series": [], "rising": []}
    rows = store.topics.clusters_published(last - timedelta(weeks=weeks), last)
    frame = pd.DataFrame(rows, columns=["published", "cluster_id"])
    if frame.empty:
        return {"weeks": [], "series": [], "rising": []}
    frame["week"] = pd.to_datetime(frame["published"]).dt.to_period("W-SUN").dt.start_time.dt.date
    table = frame.pivot_table(index="cluster_id", columns="week", aggfunc="size", fill_value=0)
    week_list = sorted(table.columns)
    top = table.sum(axis=1).sort_values(ascending=False).head(limit).index
    labels = {c.id: c.label for c in _summaries(_cluster_counts(store, [int(i) for i in top]), 1)}
    series = [{"cluster_id": int(c), "label": labels.get(int(c), ""), "counts": [int(table.loc[c, w]) for w in week_list]} for c in top]
    split = max(1, len(week_list) * 2 // 3)
    recent, earlier = table[week_list[split:]].sum(axis=1), table[week_list[:split]].sum(axis=1)
    # Weekly rate now vs before, smoothed so a cluster born last week with 1 paper is not "rising".
    growth = ((recent + 1) / max(1, len(week_list) - split)) / ((earlier + 1) / split)
    candidates = growth[recent >= 3].sort_values(ascending=False).head(limit)
    rising_labels = {c.id: c.label for c in _summaries(_cluster_counts(store, [int(i) for i in candidates.index]), 1)}
    rising = [
        {"cluster_id": int(c), "label": rising_labels.get(int(c), ""), "recent": int(recent[c]), "earlier": int(earlier[c]), "growth": round(float(g), 2)}
        for c, g in candidates.items()
    ]
    return {"weeks": [w.isoformat() for w in week_list], "series": series, "rising": rising}


class SearchIndex:
    """Paper embeddings held in memory for brute-force cosine search (72k papers: ~110 MB,
    a few ms a query; concurrent queries are embedded and scored as one batch). Checked in
    the background when older than ``refresh_s``, and read again only if papers were tagged
    since (or after ``full_reload_every`` checks anyway).

    Where the CPU computes bf16 natively, a bf16 copy of the vectors picks each query's
    ``CANDIDATES`` best papers (4.2x faster than the fp32 scan on 2 cores) and fp32 scores
    rank them: on the 72k-paper stream the top 20 were those of the exact scan for 1,024 of
    1,024 search queries (one tie in another order)."""

    CANDIDATES = 100

    def __init__(self, store: Store, refresh_s: float = 30.0, full_reload_every: int = 10):
        self.store = store
        self.refresh_s = refresh_s
        self.full_reload_every = full_reload_every
        self._ids: list[str] = []
        self._matrix = np.zeros((0, 384), dtype=np.float32)
        self._coarse: torch.Tensor | None = None  # torch bf16 copy of _matrix, where the CPU computes bf16 natively
        self._loaded_at = 0.0
        self._lock = threading.Lock()
        self._first_load = threading.Lock()
        self._reloading = False
        self._signature: tuple | None = None
        self._skipped = 0
        self._batcher = Batcher(self._search_batch)

    def _reload(self) -> None:
        try:
            signature = self.store.topics.embeddings_signature()
            if signature == self._signature and self._skipped < self.full_reload_every:
                self._skipped += 1
                with self._lock:
                    self._loaded_at = time.monotonic()
                return
            rows = self.store.topics.embeddings()
            ids = [r[0] for r in rows]
            matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1) if rows else np.zeros((0, 384), np.float32)
            coarse = None
            if cpu_bf16() and len(ids) > self.CANDIDATES:
                import torch

                coarse = torch.from_numpy(matrix.copy()).to(torch.bfloat16)
            with self._lock:
                self._ids, self._matrix, self._coarse, self._loaded_at = ids, matrix, coarse, time.monotonic()
                self._signature, self._skipped = signature, 0
        finally:
            self._reloading = False

    def _fresh(self) -> None:
        age = time.monotonic() - self._loaded_at
        if self._loaded_at == 0.0:
            with self._first_load:  # concurrent first searches load once
                if self._loaded_at == 0.0:
                    self._reload()
        elif age > self.refresh_s and not self._reloading:
            self._reloading = True
            threading.Thread(target=self._reload, daemon=True).start()

    def search(self, q: str, limit: int = 20) -> list[tuple[PaperRecord, float]]:
        """The papers nearest to ``q``, best first, as summary rows (no abstract) with their
        cosine similarity."""
        self._fresh()
        return self._batcher((q, limit))

    def _search_batch(self, queries: list[tuple[str, int]]) -> list[list[tuple[PaperRecord, float]]]:
        """Queries that arrived together: one embedding call, one pass over the matrix, one
        store query for the papers of every answer."""
        with self._lock:
            ids, matrix, coarse = self._ids, self._matrix, self._coarse
        if not ids:
            return [[] for _ in queries]
        vectors = embed([q for q, _ in queries])
        widest = max(limit for _, limit in queries)
        if coarse is not None and widest <= self.CANDIDATES:
            import torch

            found = torch.topk(coarse @ torch.from_numpy(vectors).to(torch.bfloat16).T, self.CANDIDATES, dim=0)
            candidates = found.indices.T.numpy()  # queries x CANDIDATES
            scores = np.einsum("qcd,qd->qc", matrix[candidates], vectors)
        else:
            candidates, scores = None, vectors @ matrix.T  # queries x papers
        ranked = []
        for row, (_, limit) in enumerate(queries):
            row_scores = scores[row]
            if limit < len(row_scores):  # the best `limit` without sorting all of them
                best = np.argpartition(-row_scores, limit)[:limit]
                top = best[np.argsort(-row_scores[best])]
            else:
                top = np.argsort(-row_scores)
            papers_at = top if candidates is None else candidates[row][top]
            ranked.append([(ids[i], float(row_scores[j])) for i, j in zip(papers_at, top)])
        papers = self.store.papers.summaries(list({arxiv_id for hits in ranked for arxiv_id, _ in hits}))
        # A paper deleted since the index was read is left out.
        return [[(papers[a], score) for a, score in hits if a in papers] for hits in ranked]


class Batcher:
    """Calls ``fn`` on a list of items for many threads at once. A thread that finds no call
    running runs one for everything waiting; the others wait for it. Nothing waits on
    purpose: batches form only while a call is running, so a lone request is never delayed,
    and under load one model call and one pass over the data serve many requests."""

    def __init__(self, fn, max_batch: int = 32):
        self.fn = fn
        self.max_batch = max_batch
        self._cv = threading.Condition()
        self._pending: list[dict] = []
        self._busy = False

    def __call__(self, item):
        slot = {"item": item, "done": False}
        with self._cv:
            self._pending.append(slot)
            while not slot["done"]:
                if self._busy:
                    self._cv.wait()
                    continue
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                self._busy = True
                self._cv.release()
                try:
                    results, error = self.fn([b["item"] for b in batch]), None
                except BaseException as exc:  # every caller in the batch gets it
                    results, error = None, exc
                finally:
                    self._cv.acquire()
                    self._busy = False
                for i, b in enumerate(batch):
                    b["result"], b["error"], b["done"] = (results[i] if error is None else None), error, True
                self._cv.notify_all()
        if slot["error"] is not None:
            raise slot["error"]
        return slot["result"]
