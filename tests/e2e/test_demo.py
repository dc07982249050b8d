"""`topictag demo --limit N --exit-when-done`, run as a user runs it."""

import json
import os
import subprocess
import sys

import pytest

from topictag.store import open_store

pytestmark = pytest.mark.model


def test_demo_tags_papers_and_the_gateway_answers(tmp_path, sample_papers):
    papers = tmp_path / "papers.jsonl"
    rows = [json.dumps(p) for p in sample_papers[:12]]
    papers.write_text("\n".join(rows + ['{"arxiv_id": "broken.1", "title": "no abstract"}']) + "\n")
    env = os.environ | {
        "TOPICTAG_DATA_DIR": str(tmp_path / "data"),
        "TOPICTAG_GATEWAY_PORT": "0",
        "TOPICTAG_STUDENT_SHIPPED_ADAPTER": "true",  # as a new installation runs
    }
    env.pop("TOPICTAG_KAFKA_BOOTSTRAP", None)
    env.pop("TOPICTAG_STORE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "topictag", "demo", "--papers", str(papers), "--exit-when-done"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["papers"] == 13
    assert summary["tagged"] == 12
    assert summary["dlq"] == 1
    # (gateway_ok is what exit status 0 already said: the demo exits 1 when the gateway did
    # not return every tagged paper.)
    assert summary["first_adapter_version"] == "v1"  # the shipped adapter, not the base model
    assert summary["gateway_url"].startswith("http://127.0.0.1:")
    assert "first paper tagged" in done.stderr
    # What the demo left in its store: every paper with a topic by the shipped adapter, and
    # nothing for the message that was no paper.
    store = open_store(f"sqlite:///{tmp_path / 'data' / 'topictag.db'}")
    try:
        rows = [store.papers.get(p["arxiv_id"]) for p in sample_papers[:12]]
        assert all(rows), "papers missing from the store"
        assert all(paper.topic for paper, _ in rows)
        assert {paper.adapter_version for paper, _ in rows} == {"v1"}
        assert store.papers.get("broken.1") is None
    finally:
        store.close()
