"""Promotion and rollback reach a running tagger without a restart; a bad adapter is
refused and the tagger keeps serving what it served."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.conftest import make_settings
from tests.e2e.test_stream import Tagger, drain, wait_until
from topictag.adapters.events import ModelEventPublisher, ProductionAdapterWatch, model_event_consumer
from topictag.adapters.registry import AdapterRefused, AdapterRegistry
from topictag.bus.kafka import ensure_topics, make_consumer, make_producer
from topictag.ingest import publish_records
from topictag.settings import Settings, TaggerSettings
from topictag.store import open_store

pytestmark = pytest.mark.model
BASE = "SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def lora_dirs(tmp_path_factory):
    """Two real LoRA adapters for the student, with random (not trained) weights: enough to
    change what it answers, which is all hot swapping needs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from topictag.student.model_files import student_model_path

    root = tmp_path_factory.mktemp("adapters")
    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        base = AutoModelForCausalLM.from_pretrained(student_model_path(Settings()))
        model = get_peft_model(base, LoraConfig(r=8, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
        model.save_pretrained(root / f"lora-{seed}")
        paths.append(root / f"lora-{seed}")
    return paths


def register(registry, path):
    version = registry.next_version()
    return registry.register(version, path, base_model=BASE, metrics={"rouge1_f": 1.0, "bleu3": 1.0},
                             training_config={}, label_snapshot={})


def test_tagger_follows_promotion_and_rollback(tmp_path, kafka, student_engine, sample_papers, lora_dirs):
    settings = make_settings(tmp_path, kafka=kafka, tagger=TaggerSettings(group_id=f"tagger-{uuid.uuid4().hex[:6]}", batch_size=4, max_wait_ms=200))
    ensure_topics(kafka)
    store = open_store(settings.store_url)
    producer = make_producer(kafka)
    announce = ModelEventPublisher(kafka)
    registry = AdapterRegistry(store, announce=announce)
    v1, v2 = register(registry, lora_dirs[0]), register(registry, lora_dirs[1])
    # No periodic look within the test: the announcements alone must move the tagger.
    watch = ProductionAdapterWatch(AdapterRegistry(store), student_engine, BASE, consumer=model_event_consumer(kafka),
                                   resync_s=3600)
    papers = iter(sample_papers[300:])
    tagged: set[str] = set()

    def tag_some(n: int) -> set[str]:
        batch = [next(papers) for _ in range(n)]
        publish_records(producer, kafka.papers_topic, batch)
        ids = {p["arxiv_id"] for p in batch}
        tagged.update(ids)
        wait_until(lambda: all(store.papers.get(i) for i in ids), 120, f"{n} papers tagged")
        return {store.papers.get(i)[0].adapter_version for i in ids}

    try:
        with Tagger(settings, student_engine, store) as tagger:
            tagger.worker.adapter_watch = watch
            assert tag_some(2) == {"base"}

            registry.promote(v1.version, "test", BASE)
            wait_until(lambda: student_engine.adapter_version == v1.version, 30, "the switch to v1")
            assert tag_some(2) == {v1.version}

            # A corrupted adapter never reaches production: the registry keeps it a candidate,
            # never promoted, and the tagger stays on v1.
            (lora_dirs[1] / "adapter_model.safetensors").write_bytes(b"not weights")
            with pytest.raises(AdapterRefused, match="checksum"):
                registry.promote(v2.version, "test", BASE)
            refused = registry.get(v2.version)
            assert (refused.status, refused.promoted_at) == ("candidate", None)
            assert registry.production().version == v1.version
            assert tag_some(2) == {v1.version}

            registry.rollback()
            wait_until(lambda: student_engine.adapter_version == "base", 30, "the rollback to the base model")
            assert tag_some(2) == {"base"}
        # No topic from the refused version anywhere in the papers' histories.
        assert {a.adapter_version for i in tagged for a in store.papers.get(i)[1]} == {"base", v1.version}
    finally:
        watch.close()
        announce.close()
        student_engine.use_adapter(None)
        producer.close()
        store.close()

    # Results on papers.tagged name the adapter that produced them.
    consumer = make_consumer(kafka, f"check-{uuid.uuid4().hex[:6]}", kafka.tagged_topic)
    versions = [json.loads(r.value)["adapter_version"] for r in drain(consumer, 8)]
    consumer.close()
    assert sorted(versions) == sorted(["base"] * 4 + [v1.version] * 4)


def test_adapter_changed_after_promotion_is_refused_by_the_tagger(tmp_path, student_engine, lora_dirs):
    """Files swapped under a production adapter: the tagger refuses it and keeps serving."""
    import shutil

    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    registry = AdapterRegistry(store)
    path = tmp_path / "lora"
    shutil.copytree(lora_dirs[0], path)
    row = register(registry, path)
    registry.promote(row.version, "test", BASE)
    (path / "adapter_model.safetensors").write_bytes(b"corrupted after promotion")
    watch = ProductionAdapterWatch(registry, student_engine, BASE)
    watch.sync()
    # The tagger's own refusal, with the reason; the registry is not changed by a tagger.
    assert list(watch.refused) == [row.version] and "checksum" in watch.refused[row.version]
    assert registry.get(row.version).status == "production"
    assert student_engine.adapter_version == "base"
    store.close()
