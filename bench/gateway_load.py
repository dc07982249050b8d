"""Gateway under load: the 72k-paper stream in a fresh SQLite store, the real gateway process,
and an open-loop load generator in another process at a fixed request rate.

    .venv/bin/python -m bench.gateway_load [--rate 200] [--seconds 30] [--papers 0 (all)]

1. Store: every paper of arxiv_ml_stream.parquet is saved as tagged (no model runs). The
   stream has no topics, so each paper gets the nearest (TF-IDF over title and abstract)
   of the ~1,400 real teacher topics in data/ (teacher_labels.parquet and
   topicgpt_gpt4_labels.parquet, near-duplicate wordings included). Then the gateway's topic
   index is built with the real code (TopicIndex.add: clusters of near-duplicate topics,
   all-MiniLM-L6-v2 embeddings of every paper for search). Embeddings are cached under
   bench/results/tmp/ so a second run skips them; --fresh rebuilds everything.
2. Gateway: `topictag gateway --port P` as its own process over that store.
3. Load: another process (this file, `drive`) sends GETs on a fixed schedule, `rate` per
   second, whatever the answers do (open loop). Latency is measured from each request's
   scheduled send time, so a stalled server shows as latency instead of fewer requests
   (no coordinated omission). wrk2 would do the same; it is not packaged here.
   Scenarios: `papers` = GET /v1/papers with a filter (topic words, category, cluster,
   adapter version, dates), half of them the second page through the cursor of the first;
   `search` = GET /v1/search?q= with a different query nearly every time (no cache helps).

Writes bench/results/gateway_load.json and gateway_load.png (--name sets another name).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "results" / "tmp" / "gateway_load"


# -- 1. the store -----------------------------------------------------------------------


def topic_pool(bundle: Path) -> list[str]:
    import pandas as pd

    teacher = pd.read_parquet(bundle / "teacher_labels.parquet")["teacher_topic"]
    gpt4 = pd.read_parquet(bundle / "topicgpt_gpt4_labels.parquet")["label"]
    topics = [t.strip() for t in pd.concat([teacher, gpt4]).dropna().astype(str) if t.strip()]
    return sorted(set(topics))


def assign_topics(frame, pool: list[str]) -> list[str]:
    """The pool topic nearest to each paper's title and abstract (TF-IDF cosine); papers with
    no word in common with any topic get one by their id, deterministically."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    text = (frame["title"].fillna("") + ". " + frame["title"].fillna("") + ". " + frame["abstract"].fillna("")).tolist()
    vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True, min_df=2, ngram_range=(1, 2), max_features=200_000)
    papers = vectorizer.fit_transform(text)
    topics = vectorizer.transform(pool)
    out = []
    for start in range(0, papers.shape[0], 4000):
        scores = (papers[start : start + 4000] @ topics.T).toarray()
        best = scores.argmax(axis=1)
        for row, b in enumerate(best):
            if scores[row, b] > 0:
                out.append(pool[b])
            else:
                digest = hashlib.sha1(frame["arxiv_id"].iloc[start + row].encode()).digest()
                out.append(pool[int.from_bytes(digest[:4], "big") % len(pool)])
    return out


class EmbeddingCache:
    """all-MiniLM-L6-v2 vectors by text, kept on disk between runs of this benchmark."""

    def __init__(self, path: Path):
        self.path = path
        self.vectors: dict[str, np.ndarray] = {}
        if path.exists():
            data = np.load(path, allow_pickle=False)
            self.vectors = dict(zip(data["texts"].tolist(), data["matrix"]))

    def fill(self, texts: list[str]) -> None:
        from topictag.embeddings import embed

        missing = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        started = time.perf_counter()
        for i in range(0, len(missing), 2048):
            chunk = missing[i : i + 2048]
            self.vectors.update(zip(chunk, embed(chunk, batch_size=64)))
            done = i + len(chunk)
            rate = done / (time.perf_counter() - started)
            print(f"  embedded {done}/{len(missing)} ({rate:.0f}/s)", file=sys.stderr, flush=True)
        if missing:
            texts_all = list(self.vectors)
            np.savez(self.path, texts=np.array(texts_all), matrix=np.stack([self.vectors[t] for t in texts_all]))

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        self.fill(texts)
        return np.stack([self.vectors[t] for t in texts])


def build_store(db: Path, papers_file: Path, bundle: Path, limit: int, threshold: float) -> dict:
    import pandas as pd
    import torch

    from topictag.schemas import Paper, TagResult
    from topictag.store import open_store
    from topictag.topics import index as topic_index
    from topictag.topics.index import TopicIndex, paper_text

    # Under contention (2 shared cores) one thread per process embeds faster than two.
    torch.set_num_threads(int(os.environ.get("BENCH_EMBED_THREADS", "1")))
    timings = {}
    started = time.perf_counter()
    frame = pd.read_parquet(papers_file)
    if limit:
        frame = frame.head(limit)
    frame = frame.dropna(subset=["arxiv_id", "abstract"]).drop_duplicates("arxiv_id").reset_index(drop=True)
    pool = topic_pool(bundle)
    frame["topic"] = assign_topics(frame, pool)
    timings["assign_topics_s"] = round(time.perf_counter() - started, 1)

    started = time.perf_counter()
    db.unlink(missing_ok=True)
    store = open_store(f"sqlite:///{db}")
    tagged = []
    for i, row in enumerate(frame.itertuples(index=False)):
        day = datetime.fromisoformat(row.first_seen_date).replace(tzinfo=timezone.utc)
        paper = Paper(arxiv_id=row.arxiv_id, title=row.title or "", abstract=row.abstract,
                      categories=(row.categories or "").split(), published=day.date())
        # Tagged in stream order, a second apart; the last 30 % by a later adapter version.
        result = TagResult(arxiv_id=row.arxiv_id, topic=row.topic, adapter_version="v1" if i > 0.7 * len(frame) else "base",
                           model="SmolLM2-135M-Instruct", latency_ms=50.0, tagged_at=day + timedelta(seconds=i % 86_400))
        tagged.append((paper, result))
    for i in range(0, len(tagged), 2000):
        store.papers.save_tagged(tagged[i : i + 2000])
    timings["save_papers_s"] = round(time.perf_counter() - started, 1)

    started = time.perf_counter()
    cache = EmbeddingCache(db.parent / "embeddings.npz")
    cache.fill([paper_text(p.title, r.topic) for p, r in tagged])
    timings["embed_papers_s"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    topic_index.embed = cache.embed  # the real TopicIndex, with vectors from the cache
    index = TopicIndex(store, threshold=threshold)
    for i in range(0, len(tagged), 2000):
        index.add(tagged[i : i + 2000])
    timings["index_s"] = round(time.perf_counter() - started, 1)
    store.close()
    return {"papers": len(frame), "topic_pool": len(pool), "distinct_topics": int(frame["topic"].nunique())} | timings


def cluster_report(db: Path, examples: int = 8) -> dict:
    from sqlmodel import Session, func, select

    from topictag.store.models import TopicCluster, TopicText
    from topictag.store import Store
    from topictag.topics.queries import clusters

    store = Store(f"sqlite:///{db}")
    with Session(store.engine) as s:
        n_clusters = s.exec(select(func.count()).select_from(TopicCluster)).one()
        n_texts = s.exec(select(func.count()).select_from(TopicText)).one()
    merged = [c for c in clusters(store, limit=10_000, top_topics=12) if len(c.topics) > 1]
    # The largest merged clusters, then a spread of smaller ones: what the clusterer joins.
    picks = merged[: examples // 2] + merged[examples // 2 :: max(1, len(merged) // examples)][: examples - examples // 2]
    out = {
        "clusters": n_clusters,
        "topic_texts": n_texts,
        "merged_clusters": len(merged),
        "examples": [{"id": c.id, "label": c.label, "papers": c.papers, "topics": [t for t, _ in c.topics]} for c in picks],
    }
    store.close()
    return out


# -- 2. the gateway ---------------------------------------------------------------------


def start_gateway(db: Path, port: int, extra_env: dict[str, str]) -> subprocess.Popen:
    import httpx

    env = {k: v for k, v in os.environ.items() if not k.startswith("TOPICTAG_")}
    env |= {"TOPICTAG_STORE_URL": f"sqlite:///{db}", "TOPICTAG_DATA_DIR": str(db.parent / "data")} | extra_env
    log = open(db.parent / "gateway.log", "w")
    exe = Path(sys.executable).parent / "topictag"
    proc = subprocess.Popen([str(exe), "gateway", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"gateway did not start; see {db.parent / 'gateway.log'}")


def papers_paths(base: str, db: Path, n: int = 60, seed: int = 7) -> list[str]:
    """Filtered first pages and, for half of them, the page after (by its cursor)."""
    import httpx
    from sqlmodel import Session, select

    from topictag.store.models import TopicCluster
    from topictag.store import Store
    from topictag.topics.queries import clusters

    rng = random.Random(seed)
    store = Store(f"sqlite:///{db}")
    big = clusters(store, limit=400)
    with Session(store.engine) as s:
        ids = s.exec(select(TopicCluster.id)).all()
    store.close()
    words = sorted({w.lower() for c in big for w in c.label.split() if len(w) > 5})
    filters = []
    for i in range(n):
        kind = i % 6
        if kind == 0:
            filters.append({"topic": rng.choice(words)})
        elif kind == 1:
            filters.append({"category": rng.choice(["cs.LG", "stat.ML", "cs.CV", "cs.CL", "cs.AI", "eess.SP", "q-bio.QM"])})
        elif kind == 2:
            filters.append({"cluster": rng.choice(big).id})  # a populous cluster
        elif kind == 3:
            filters.append({"cluster": rng.choice(ids)})  # any cluster, most of them small
        elif kind == 4:
            day = datetime(2025, 3, 18) + timedelta(days=rng.randrange(500))
            filters.append({"published_from": day.date().isoformat(), "published_to": (day + timedelta(days=14)).date().isoformat()})
        else:
            filters.append({"adapter_version": "v1", "category": "stat.ML"})
    paths = []
    with httpx.Client(base_url=base, timeout=60) as client:
        for f in filters:
            first = client.get("/v1/papers", params=f | {"limit": 50})
            first.raise_for_status()
            paths.append(first.request.url.raw_path.decode())
            cursor = first.json()["next_cursor"]
            if cursor:
                paths.append(client.build_request("GET", "/v1/papers", params=f | {"limit": 50, "cursor": cursor}).url.raw_path.decode())
    return paths


def search_paths(papers_file: Path, n: int, seed: int = 11) -> list[str]:
    """Mostly distinct queries: the first words of random titles, and some topic phrases."""
    from urllib.parse import urlencode

    import pandas as pd

    rng = random.Random(seed)
    titles = pd.read_parquet(papers_file, columns=["title"])["title"].dropna().tolist()
    out = []
    for _ in range(n):
        words = rng.choice(titles).split()
        out.append("/v1/search?" + urlencode({"q": " ".join(words[: rng.randint(2, 6)]), "limit": 20}))
    return out


# -- 3. the load generator (its own process) --------------------------------------------


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, path: str) -> str:
    """One GET on a kept-alive HTTP/1.1 connection; the status code."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)[1]
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    else:  # chunked
        while True:
            size = int((await reader.readline()).strip() or b"0", 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def _drive(base: str, paths: list[str], rate: float, seconds: float, timeout: float, connections: int = 256) -> dict:
    """Open loop: request i is due at start + i/rate, whatever came before. `connections`
    kept-alive connections take due requests in order; a request that waits for a free
    connection counts that wait as latency (as wrk2 does), so a slow server shows up."""
    from urllib.parse import urlsplit

    url = urlsplit(base)
    host, port = url.hostname, url.port or 80
    n = int(rate * seconds)
    loop = asyncio.get_running_loop()
    results: list[tuple[float, float, float, str]] = [None] * n  # type: ignore[list-item]
    due: asyncio.Queue = asyncio.Queue()
    start = loop.time() + 0.5

    async def connection() -> None:
        reader = writer = None
        while True:
            item = await due.get()
            if item is None:
                break
            i, scheduled = item
            sent = loop.time()
            try:
                for attempt in (0, 1):
                    fresh = writer is None
                    if fresh:
                        reader, writer = await asyncio.open_connection(host, port)
                    try:
                        status = await asyncio.wait_for(_request(reader, writer, f"{host}:{port}", paths[i % len(paths)]), timeout)
                        break
                    except (asyncio.IncompleteReadError, ConnectionError):
                        # The server closed a kept-alive connection while it idled: reconnect
                        # once, as every HTTP client does. A fresh one failing is an error.
                        writer.close()
                        reader = writer = None
                        if fresh or attempt:
                            raise
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                status = exc.__class__.__name__
                if writer is not None:
                    writer.close()
                reader = writer = None
            results[i] = (scheduled, sent - scheduled, loop.time() - scheduled, status)
        if writer is not None:
            writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    for i in range(n):
        scheduled = start + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        due.put_nowait((i, scheduled))
    for _ in workers:
        due.put_nowait(None)
    await asyncio.gather(*workers)
    return summarise(results, rate, seconds, start)


def summarise(results, rate: float, seconds: float, start: float) -> dict:
    lat = np.array([r[2] for r in results]) * 1000
    lag = np.array([r[1] for r in results]) * 1000  # due -> sent: waiting for a free connection
    ok = np.array([r[3] == "200" for r in results])
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r[3]] = statuses.get(r[3], 0) + 1
    end = max(r[0] + r[2] for r in results)
    # Latency over time (1 s buckets, p99) shows whether the server kept up or fell behind.
    buckets = np.floor(np.array([r[0] - start for r in results])).astype(int)
    p99_per_s = [round(float(np.percentile(lat[buckets == b], 99)), 1) for b in range(int(buckets.max()) + 1)]
    return {
        "requests": len(results),
        "offered_rate": rate,
        "achieved_rate": round(ok.sum() / (end - start), 1),
        "seconds": seconds,
        "statuses": statuses,
        "latency_ms": {q: round(float(np.percentile(lat, p)), 1) for q, p in
                       (("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9), ("max", 100))},
        # Requests refused at once (503: over the gateway's bound) count above; these are the answered ones.
        "answered_latency_ms": {q: round(float(np.percentile(lat[ok], p)), 1) for q, p in
                                (("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9), ("max", 100))} if ok.any() else {},
        "answered_share": round(float(ok.mean()), 4),
        "mean_ms": round(float(lat.mean()), 1),
        "wait_for_connection_ms_p99": round(float(np.percentile(lag, 99)), 2),
        "p99_ms_per_second": p99_per_s,
    }


def drive_in_process(base: str, paths: list[str], rate: float, seconds: float, timeout: float = 30.0) -> dict:
    """Runs the load generator as its own process (so it never shares a GIL with anything)."""
    spec = WORK / f"paths-{os.getpid()}.json"
    spec.write_text(json.dumps(paths))
    out = subprocess.run(
        [sys.executable, "-m", "bench.gateway_load", "drive", "--url", base, "--paths", str(spec),
         "--rate", str(rate), "--seconds", str(seconds), "--timeout", str(timeout)],
        cwd=REPO, capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- main -------------------------------------------------------------------------------


def run(args) -> None:
    from bench.common import bar_chart, write
    from topictag.bus.embedded import free_port
    from topictag.settings import get_settings

    settings = get_settings()
    bundle = args.bundle or settings.paths.bundle_dir
    papers_file = args.papers_file or Path(bundle) / "arxiv_ml_stream.parquet"
    WORK.mkdir(parents=True, exist_ok=True)
    db = WORK / "store.db"
    marker = WORK / "store.json"
    wanted = {"papers_file": str(papers_file), "limit": args.papers, "threshold": args.threshold}
    if args.fresh or not marker.exists() or json.loads(marker.read_text()).get("wanted") != wanted:
        print("building the store (first run: about 10 minutes on 2 cores)...", file=sys.stderr, flush=True)
        built = build_store(db, papers_file, Path(bundle), args.papers, args.threshold)
        marker.write_text(json.dumps({"wanted": wanted, "built": built}))
    built = json.loads(marker.read_text())["built"]
    report = cluster_report(db)
    print(f"store: {built}; {report['clusters']} clusters", file=sys.stderr, flush=True)
    if args.build_only:
        return

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    extra = dict(kv.split("=", 1) for kv in args.env)
    gateway = start_gateway(db, port, extra)
    try:
        import httpx

        started = time.perf_counter()
        httpx.get(f"{base}/v1/search", params={"q": "warm up"}, timeout=120).raise_for_status()
        first_search_s = time.perf_counter() - started
        scenarios = {
            "papers": papers_paths(base, db),
            "search": search_paths(papers_file, int(args.rate * args.seconds) + 1),
        }
        results = {}
        for name in args.scenarios:
            paths = scenarios[name]
            drive_in_process(base, paths, args.rate, min(5.0, args.seconds))  # warm-up, not recorded
            results[name] = drive_in_process(base, paths, args.rate, args.seconds) | {"distinct_urls": len(set(paths))}
            print(name, json.dumps(results[name]), file=sys.stderr, flush=True)
    finally:
        gateway.terminate()
        gateway.wait(10)
    result = {
        "what": "GET latency of the gateway process under a fixed, open-loop request rate (from a separate "
                "process); latency counted from each request's scheduled send time",
        "store": "SQLite",
        "gateway_env": extra,
        "papers": built["papers"],
        "build": built,
        "topic_clusters": report,
        "first_search_s": round(first_search_s, 2),
        "scenarios": results,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    write(args.name, result)
    labels, values = [], []
    for name, r in results.items():
        labels += [f"{name} p50", f"{name} p99"]
        values += [r["latency_ms"]["p50"], r["latency_ms"]["p99"]]
    bar_chart(args.name, labels, values, "ms",
              f"Gateway at {args.rate:.0f} req/s, {built['papers']:,} papers (SQLite, 2 shared cores)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    drive = sub.add_parser("drive", help="the load generator alone (run by the benchmark in its own process)")
    drive.add_argument("--url", required=True)
    drive.add_argument("--paths", type=Path, required=True, help="JSON list of paths, sent round-robin")
    drive.add_argument("--rate", type=float, default=200)
    drive.add_argument("--seconds", type=float, default=30)
    drive.add_argument("--timeout", type=float, default=30)
    parser.add_argument("--rate", type=float, default=200, help="requests per second, fixed")
    parser.add_argument("--seconds", type=float, default=30, help="per scenario")
    parser.add_argument("--scenarios", nargs="+", default=["papers", "search"], choices=["papers", "search"])
    parser.add_argument("--papers", type=int, default=0, help="first N papers of the stream (0: all)")
    parser.add_argument("--papers-file", type=Path, default=None)
    parser.add_argument("--bundle", type=Path, default=None, help="data folder (default: the repository's data/)")
    parser.add_argument("--threshold", type=float, default=0.85, help="cluster threshold (TOPICTAG_TOPICS_CLUSTER_THRESHOLD)")
    parser.add_argument("--env", nargs="*", default=[], help="extra KEY=VALUE settings for the gateway process")
    parser.add_argument("--name", default="gateway_load", help="results file name under bench/results")
    parser.add_argument("--build-only", action="store_true", help="build (or check) the store, run no load")
    parser.add_argument("--fresh", action="store_true", help="rebuild the store even if one for these inputs exists")
    args = parser.parse_args()
    if args.command == "drive":
        paths = json.loads(args.paths.read_text())
        print(json.dumps(asyncio.run(_drive(args.url, paths, args.rate, args.seconds, args.timeout))))
    else:
        run(args)


if __name__ == "__main__":
    main()
