"""The adapter registry and the trainer's single-flight lease, on SQLite and PostgreSQL."""

import json
import time

import pytest

from topictag.adapters.registry import (
    AdapterRefused,
    AdapterRegistry,
    adapter_sha256,
    decide_promotion,
)
from topictag.trainer import lease

BASE = "SmolLM2-135M-Instruct"


def adapter_dir(root, name, base=BASE, weights=b"weights"):
    path = root / name
    path.mkdir()
    (path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": f"/models/{base}", "r": 8}))
    (path / "adapter_model.safetensors").write_bytes(weights + name.encode())
    return path


@pytest.fixture
def registry(store):
    events = []
    reg = AdapterRegistry(store, announce=events.append)
    reg.events = events
    return reg


def register(registry, root, base=BASE, rouge=50.0):
    version = registry.next_version()
    return registry.register(
        version, adapter_dir(root, version, base), base_model=BASE,
        metrics={"rouge1_f": rouge, "bleu3": 30.0}, training_config={"epochs": 1}, label_snapshot={"n_train": 10},
    )


def test_versions_are_sequential_and_ids_never_reused(registry, tmp_path):
    rows = [register(registry, tmp_path) for _ in range(3)]
    assert [r.version for r in rows] == ["v1", "v2", "v3"]
    assert len({r.id for r in rows}) == 3
    assert rows[0].sha256 == adapter_sha256(tmp_path / "v1")
    assert all(r.status == "candidate" for r in rows)


def test_promote_then_rollback_walks_back_to_the_base_model(registry, tmp_path):
    v1, v2 = register(registry, tmp_path), register(registry, tmp_path)
    registry.promote("v1", "better", BASE)
    registry.promote("v2", "better", BASE)
    assert registry.production().version == "v2"
    assert registry.get("v1").status == "retired"
    assert registry.rollback().version == "v1"
    assert registry.production().version == "v1"
    assert registry.rollback() is None  # nothing promoted before v1: back to the base model
    assert registry.production() is None
    with pytest.raises(AdapterRefused, match="nothing to roll back"):
        registry.rollback()
    assert [(e["event"], e["version"]) for e in registry.events] == [
        ("promoted", "v1"), ("promoted", "v2"), ("rolled_back", "v1"), ("rolled_back", None)
    ]


def test_corrupted_adapter_is_refused_and_production_stays(registry, tmp_path):
    register(registry, tmp_path)
    registry.promote("v1", "better", BASE)
    register(registry, tmp_path)
    (tmp_path / "v2" / "adapter_model.safetensors").write_bytes(b"corrupted")
    with pytest.raises(AdapterRefused, match="checksum mismatch"):
        registry.promote("v2", "by hand", BASE)
    assert registry.production().version == "v1"


def test_adapter_for_another_base_model_is_refused(registry, tmp_path):
    register(registry, tmp_path, base="Meta-Llama-3-8B-Instruct")
    with pytest.raises(AdapterRefused, match="base model"):
        registry.promote("v1", "by hand", BASE)
    with pytest.raises(AdapterRefused, match="no adapter version"):
        registry.promote("v9", "by hand", BASE)


@pytest.mark.parametrize(
    ("candidate", "incumbent", "promote"),
    [
        ({"rouge1_f": 45.0, "bleu3": 30.0}, {"rouge1_f": 40.0, "bleu3": 30.0}, True),
        ({"rouge1_f": 40.2, "bleu3": 30.0}, {"rouge1_f": 40.0, "bleu3": 30.0}, False),  # under the margin
        ({"rouge1_f": 45.0, "bleu3": 25.0}, {"rouge1_f": 40.0, "bleu3": 30.0}, False),  # BLEU-3 regressed
        ({"rouge1_f": 45.0, "bleu3": 29.5}, {"rouge1_f": 40.0, "bleu3": 30.0}, True),  # within the allowed drop
    ],
)
def test_promotion_rule(candidate, incumbent, promote):
    decision = decide_promotion(candidate, incumbent, min_rouge_gain=0.5, max_bleu_drop=1.0)
    assert decision.promote is promote
    assert "ROUGE-1 F" in decision.reason


def test_lease_is_single_flight_and_expires(store):
    assert lease.acquire(store, "training", "a", ttl_s=60)
    assert not lease.acquire(store, "training", "b", ttl_s=60)
    lease.release(store, "training", "b")  # not b's to release
    assert not lease.acquire(store, "training", "b", ttl_s=60)
    lease.release(store, "training", "a")
    assert lease.acquire(store, "training", "b", ttl_s=0.2)
    time.sleep(0.5)
    assert lease.acquire(store, "training", "c", ttl_s=60)  # b crashed: its lease lapsed


def test_held_lease_is_renewed_while_the_block_runs(store):
    with lease.held(store, "training", "a", ttl_s=0.6) as got:
        assert got
        time.sleep(1.0)  # longer than the ttl: only renewal keeps it
        assert not lease.acquire(store, "training", "b", ttl_s=60)
        with lease.held(store, "training", "b", ttl_s=60) as other:
            assert other is False
    assert lease.acquire(store, "training", "b", ttl_s=60)
