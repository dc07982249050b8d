"""The adapter registry and the trainer's single-flight lease, on SQLite and PostgreSQL."""

import json
import time
from datetime import UTC

import numpy as np
import pytest
from safetensors.numpy import save_file
from sqlmodel import Session, select

from topictag.adapters.registry import (
    AdapterRefused,
    AdapterRegistry,
    adapter_sha256,
    as_engine_adapter,
)
from topictag.settings import PathSettings, Settings
from topictag.store.leases import held
from topictag.store.models import TrainingRun
from topictag.trainer.pipeline import TrainingPipeline

BASE = "SmolLM2-135M-Instruct"


def adapter_dir(root, name, base=BASE):
    """A small but real LoRA adapter folder: a peft config and safetensors weights whose
    values differ per name (so checksums do)."""
    path = root / name
    path.mkdir()
    config = {"peft_type": "LORA", "base_model_name_or_path": f"/models/{base}", "r": 8, "lora_alpha": 16}
    (path / "adapter_config.json").write_text(json.dumps(config))
    seed = sum(name.encode())
    prefix = "base_model.model.model.layers.0.self_attn.q_proj"
    save_file({f"{prefix}.lora_A.weight": np.full((8, 16), seed, np.float32),
               f"{prefix}.lora_B.weight": np.zeros((16, 8), np.float32)}, str(path / "adapter_model.safetensors"))
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


def test_engine_ids_follow_the_weights_not_the_store(registry, tmp_path):
    """An engine can outlive its store (a tagger pointed at a new database, the test suite's
    shared engine): another store's v1 must not get the id, and so the cached weights, of
    the first one's v1. The same weights keep one id."""
    from topictag.store import open_store

    ours = as_engine_adapter(register(registry, tmp_path))
    other_store = open_store(f"sqlite:///{tmp_path / 'other.db'}")
    other = AdapterRegistry(other_store)
    theirs = other.register("v1", adapter_dir(tmp_path, "other-weights"), base_model=BASE, metrics={},
                            training_config={}, label_snapshot={})
    same = other.register("v2", tmp_path / "v1", base_model=BASE, metrics={}, training_config={}, label_snapshot={})
    assert ours.version == "v1" and as_engine_adapter(theirs).version == "v1"
    assert as_engine_adapter(theirs).lora_id != ours.lora_id
    assert as_engine_adapter(same).lora_id == ours.lora_id
    assert 0 < ours.lora_id < 2**31
    other_store.close()


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


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda p: (p / "adapter_model.safetensors").write_bytes(b"not weights"), "unreadable weights"),
        (lambda p: (p / "adapter_config.json").write_text("{not json"), "unreadable adapter_config.json"),
        (lambda p: (p / "adapter_config.json").write_text('{"peft_type": "LORA"}'), "no LoRA rank"),
        (lambda p: save_file({"lm_head.weight": np.zeros((2, 2), np.float32)}, str(p / "adapter_model.safetensors")),
         "no LoRA weights"),
        (lambda p: (p / "adapter_model.safetensors").unlink(), "no adapter_model.safetensors"),
    ],
)
def test_unreadable_adapter_is_never_registered(registry, tmp_path, damage, why):
    path = adapter_dir(tmp_path, "broken")
    damage(path)
    with pytest.raises(AdapterRefused, match=why):
        registry.register("v1", path, base_model=BASE, metrics={}, training_config={}, label_snapshot={})
    assert registry.list() == []


def test_adapter_for_another_base_model_is_refused(registry, tmp_path):
    register(registry, tmp_path, base="Meta-Llama-3-8B-Instruct")
    with pytest.raises(AdapterRefused, match="base model"):
        registry.promote("v1", "by hand", BASE)
    with pytest.raises(AdapterRefused, match="no adapter version"):
        registry.promote("v9", "by hand", BASE)


def test_lease_is_single_flight_and_expires(store):
    assert store.leases.acquire("training", "a", ttl_s=60)
    assert not store.leases.acquire("training", "b", ttl_s=60)
    store.leases.release("training", "b")  # not b's to release
    assert not store.leases.acquire("training", "b", ttl_s=60)
    store.leases.release("training", "a")
    assert store.leases.acquire("training", "b", ttl_s=0.2)
    time.sleep(0.5)
    assert store.leases.acquire("training", "c", ttl_s=60)  # b crashed: its lease lapsed


def test_held_lease_is_renewed_while_the_block_runs(store):
    with held(store.leases, "training", "a", ttl_s=0.6) as got:
        assert got
        time.sleep(1.0)  # longer than the ttl: only renewal keeps it
        assert not store.leases.acquire("training", "b", ttl_s=60)
        with held(store.leases, "training", "b", ttl_s=60) as other:
            assert other is False
    assert store.leases.acquire("training", "b", ttl_s=60)


def test_training_after_a_crash_cleans_up_what_the_killed_one_left(store, tmp_path):
    """A worker killed mid-training leaves a "running" row and a hidden staging folder; the
    next training to take the lease marks the row failed and deletes the folder."""
    from datetime import datetime

    settings = Settings(paths=PathSettings(data_dir=tmp_path / "data"))
    staging = settings.adapters_dir / ".v1-abc123"
    (staging / "adapter").mkdir(parents=True)
    with Session(store.engine) as s:
        s.add(TrainingRun(request_id="killed", status="running", started_at=datetime.now(UTC)))
        s.commit()
    pipeline = TrainingPipeline(settings, store, AdapterRegistry(store), engine_factory=None)
    outcome = pipeline.run("next")  # no labels yet: it is skipped, after the clean-up
    assert outcome.status == "skipped"
    with Session(store.engine) as s:
        killed = s.exec(select(TrainingRun).where(TrainingRun.request_id == "killed")).one()
    assert killed.status == "failed" and killed.finished_at is not None and "interrupted" in killed.detail
    assert not staging.exists() and list(settings.adapters_dir.iterdir()) == []
