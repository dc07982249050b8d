"""Topic clusters, trends and semantic search over a real store and real embeddings."""

from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient

from tests.integration.test_store import tagged
from topictag.gateway.app import create_app
from topictag.settings import Settings
from topictag.topics.index import TopicIndex

TOPICS = [
    "Anomaly Detection in Time Series",
    "Time Series Anomaly Detection",
    "Anomaly Detection in Time Series",
    "Graph Neural Networks for Molecules",
    "Federated Learning",
    "Federated Learning",
    "Federated Learning",
]


@pytest.fixture
def indexed(store):
    index = TopicIndex(store, threshold=0.85)
    batch = [tagged(i, t) for i, t in enumerate(TOPICS)]
    store.papers.save_tagged(batch)
    index.add(batch)
    return store, index


def cluster_of(store, topic):
    from sqlmodel import Session

    from topictag.store.models import TopicText

    with Session(store.engine) as s:
        return s.get(TopicText, topic).cluster_id


def test_near_duplicate_topics_share_a_cluster(indexed):
    store, index = indexed
    assert cluster_of(store, "Anomaly Detection in Time Series") == cluster_of(store, "Time Series Anomaly Detection")
    assert cluster_of(store, "Federated Learning") != cluster_of(store, "Graph Neural Networks for Molecules")


def test_cluster_ids_are_stable_as_papers_arrive(indexed):
    store, index = indexed
    before = cluster_of(store, "Federated Learning")
    more = [tagged(100 + i, t) for i, t in enumerate(["Federated Learning Systems", "Protein Folding", "Federated Learning"])]
    store.papers.save_tagged(more)
    TopicIndex(store).add(more)  # a second tagger process: reads the clusters from the store
    assert cluster_of(store, "Federated Learning") == before
    assert cluster_of(store, "Federated Learning Systems") == before


def test_clusters_endpoint_and_filter(indexed):
    store, _ = indexed
    with TestClient(create_app(Settings(), store=store)) as c:
        items = c.get("/v1/topics/clusters").json()["items"]
        assert [i["papers"] for i in items] == [3, 3, 1]  # largest first
        assert next(i for i in items if i["label"] == "Federated Learning")["papers"] == 3
        anomaly = next(i for i in items if "Anomaly" in i["label"])
        assert anomaly["label"] == "Anomaly Detection in Time Series"  # the most common wording
        assert anomaly["papers"] == 3
        assert {t["topic"] for t in anomaly["topics"]} == {"Anomaly Detection in Time Series", "Time Series Anomaly Detection"}
        papers = c.get("/v1/papers", params={"cluster": anomaly["id"]}).json()["items"]
        assert len(papers) == 3
        assert c.get(f"/v1/topics/clusters/{anomaly['id']}").json()["papers"] == 3
        assert c.get("/v1/topics/clusters/999999").status_code == 404
        assert c.get("/v1/papers", params={"category": "cs.LG"}).json()["items"]
        assert c.get("/v1/papers", params={"category": "cs.L"}).json()["items"] == []


def test_semantic_search_finds_the_meaning(indexed):
    store, _ = indexed
    with TestClient(create_app(Settings(), store=store)) as c:
        hits = c.get("/v1/search", params={"q": "detecting outliers in sensor signals over time"}).json()["items"]
        assert "Anomaly" in hits[0]["topic"]
        assert hits[0]["score"] >= hits[-1]["score"]
        assert c.get("/v1/search", params={"q": ""}).status_code == 422


def test_bf16_candidates_give_the_papers_of_the_exact_scan(store, teacher_labels, monkeypatch):
    """Where the CPU computes bf16, search picks candidates on a bf16 copy of the vectors
    and ranks them in fp32: the same papers with the same scores as the fp32 scan."""

    from topictag.topics import queries

    topics = teacher_labels["teacher_topic"].astype(str).tolist()
    batch = [tagged(i, t) for i, t in enumerate(topics[:400])]  # near-duplicate topics among them
    store.papers.save_tagged(batch)
    TopicIndex(store, threshold=0.85).add(batch)
    asked = topics[400:440]
    found = {}
    for bf16 in (True, False):
        monkeypatch.setattr(queries, "cpu_bf16", lambda bf16=bf16: bf16)
        index = queries.SearchIndex(store)
        found[bf16] = [index.search(q, 20) for q in asked]
        assert (index._coarse is not None) == bf16
    for coarse, exact in zip(found[True], found[False]):
        assert [s for _, s in coarse] == pytest.approx([s for _, s in exact], abs=1e-5)
        assert {p.arxiv_id for p, _ in coarse} == {p.arxiv_id for p, _ in exact}  # a tie may swap places


def test_searches_over_the_bound_are_refused_at_once_and_the_rest_answered(indexed):
    """With search_max_waiting searches inside, the next gets 503 + Retry-After without
    waiting; those let in are answered, and once they are, searches are let in again."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from topictag.settings import GatewaySettings

    store, _ = indexed
    settings = Settings(gateway=GatewaySettings(search_max_waiting=2, read_cache_s=0))
    with TestClient(create_app(settings, store=store)) as c:
        index = c.app.state.search
        real, entered, release = index.search, threading.Semaphore(0), threading.Event()

        def held(q, limit):
            entered.release()
            release.wait(60)
            return real(q, limit)

        index.search = held
        with ThreadPoolExecutor(2) as pool:
            admitted = [pool.submit(c.get, "/v1/search", params={"q": f"federated learning {i}"}) for i in range(2)]
            assert all(entered.acquire(timeout=60) for _ in admitted)
            refused = c.get("/v1/search", params={"q": "graphs"})
            release.set()
            answers = [f.result() for f in admitted]
        assert refused.status_code == 503, refused.text
        assert refused.headers["Retry-After"] == "1" and "waiting" in refused.json()["detail"]
        assert [a.status_code for a in answers] == [200, 200]
        assert answers[0].json()["items"][0]["topic"] == "Federated Learning"
        index.search = real
        assert c.get("/v1/search", params={"q": "graphs"}).status_code == 200


def test_trends_and_rising(store):
    index = TopicIndex(store)
    start = date(2026, 1, 1)
    batch = []
    for week in range(9):
        # "Federated Learning" steady, "Diffusion Models" only in the last weeks
        for k in range(2):
            batch.append(tagged(week * 10 + k, "Federated Learning"))
        if week >= 6:
            for k in range(3):
                batch.append(tagged(week * 10 + 5 + k, "Diffusion Models"))
    for paper, result in batch:
        week = int(paper.arxiv_id[-5:]) // 10
        paper.published = start + timedelta(weeks=week)
    store.papers.save_tagged(batch)
    index.add(batch)
    with TestClient(create_app(Settings(), store=store)) as c:
        body = c.get("/v1/topics/trends", params={"weeks": 9}).json()
    assert len(body["weeks"]) >= 8
    labels = [s["label"] for s in body["series"]]
    assert set(labels) == {"Federated Learning", "Diffusion Models"}
    assert body["rising"][0]["label"] == "Diffusion Models"
    assert all(sum(s["counts"]) > 0 for s in body["series"])


# Wordings of six topic families: every pair within a family is at least 0.87 cosine apart
# at most 0.45 across, so clustering them in any order (3,000 orders simulated) gives one
# cluster per family; a replica deciding without the others' clusters gives more.
FAMILIES = [
    ["Anomaly Detection in Time Series", "Time Series Anomaly Detection", "Anomaly Detection for Time Series",
     "Time-Series Anomaly Detection"],
    ["Federated Learning", "Federated Learning Systems", "Federated Learning Methods", "Federated Learning Algorithms"],
    ["Graph Neural Networks for Molecules", "Molecular Graph Neural Networks", "Graph Neural Networks for Molecular Graphs"],
    ["Protein Structure Prediction", "Prediction of Protein Structure", "Protein Structure Prediction Methods"],
    ["Reinforcement Learning for Robotics", "Robotic Reinforcement Learning", "Reinforcement Learning in Robotics"],
    ["Large Language Model Evaluation", "Evaluation of Large Language Models", "Evaluating Large Language Models"],
]


def family_stream(papers: int = 60) -> list[list]:
    """Batches of 5 papers whose topics walk through every family's wordings in turn."""
    texts = [t for family in FAMILIES for t in family]
    stream = [tagged(i, texts[(i * 7) % len(texts)]) for i in range(papers)]
    return [stream[i : i + 5] for i in range(0, papers, 5)]


def clusters_by_text(store) -> set[frozenset[str]]:
    by_cluster: dict[int, set[str]] = {}
    for cluster_id, topic, _ in store.topics.cluster_topic_counts():
        by_cluster.setdefault(cluster_id, set()).add(topic)
    return {frozenset(texts) for texts in by_cluster.values()}


def test_one_tagger_makes_one_cluster_per_family(store):
    index = TopicIndex(store, threshold=0.85)
    for batch in family_stream():
        store.papers.save_tagged(batch)
        index.add(batch)
    assert clusters_by_text(store) == {frozenset(f) for f in FAMILIES}


def test_three_taggers_make_the_same_clusters_as_one(store):
    """Three replicas (each its own store connection and index) take the stream's batches
    round-robin at the same time; a replica that started before the others' clusters existed
    must still join them."""
    import threading

    from topictag.store import Store

    batches = family_stream()
    replicas = [Store(store.url) for _ in range(3)]
    errors: list[BaseException] = []

    def tagger(n: int) -> None:
        index = TopicIndex(replicas[n], threshold=0.85)
        index.add(batches[n][:1])  # loaded its view of the clusters before the others wrote
        try:
            for batch in batches[n::3]:
                replicas[n].papers.save_tagged(batch)
                index.add(batch)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=tagger, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for replica in replicas:
        replica.close()
    assert errors == []
    assert clusters_by_text(store) == {frozenset(f) for f in FAMILIES}
