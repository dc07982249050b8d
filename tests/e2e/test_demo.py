"""`topictag demo --limit N --exit-when-done`, run as a user runs it."""

import json
import os
import subprocess
import sys

import pytest

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
    assert summary["gateway_ok"] is True
    assert summary["first_adapter_version"] == "v1"  # the shipped adapter, not the base model
    assert summary["gateway_url"].startswith("http://127.0.0.1:")
    assert "first paper tagged" in done.stderr
    assert (tmp_path / "data" / "topictag.db").exists()
