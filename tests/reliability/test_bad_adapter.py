"""Fault: a bad adapter reaches production in the registry. Must hold: a running tagger
refuses it with a clear reason and keeps serving the adapter it served, on the same
engine, without a restart.

Covered elsewhere: files changed after registration (checksum) at promotion and in the
tagger (tests/e2e/test_hot_swap.py), another base model at promotion
(tests/integration/test_registry.py), a worse candidate refused by the promotion rule
(tests/e2e/test_loop.py, tests/reliability/test_trainer_kill.py). Here: unreadable weights,
which the registry refuses to register; an adapter that passes the registry's checks but
cannot be served (a rank over the engine's limit); and one trained for another base model,
promoted by a trainer configured for that model.
"""

from __future__ import annotations

import json
import shutil
import uuid

import pytest

from tests.conftest import make_settings
from tests.e2e.test_stream import Tagger, wait_until
from topictag.adapters.events import ModelEventPublisher, ProductionAdapterWatch, model_event_consumer
from topictag.adapters.registry import AdapterRefused, AdapterRegistry
from topictag.bus.kafka import ensure_topics, make_producer
from topictag.ingest import publish_records
from topictag.settings import Settings, TaggerSettings
from topictag.store import open_store

pytestmark = pytest.mark.model
BASE = "SmolLM2-135M-Instruct"
OTHER_BASE = "Meta-Llama-3-8B-Instruct"


@pytest.fixture(scope="module")
def adapter_dirs(tmp_path_factory):
    """Real LoRA adapters (random weights) and broken ones made from them."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from topictag.student.model_files import student_model_path

    root = tmp_path_factory.mktemp("bad-adapters")
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(student_model_path(Settings()))
    for name, rank in (("good", 8), ("rank64", 64)):  # the engine serves ranks up to 32
        model = get_peft_model(base, LoraConfig(r=rank, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                init_lora_weights=False))
        model.save_pretrained(root / name)
        base = model.unload()
    shutil.copytree(root / "good", root / "garbage")
    (root / "garbage" / "adapter_model.safetensors").write_bytes(b"not weights")
    shutil.copytree(root / "good", root / "other-base")
    config = json.loads((root / "other-base" / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = f"meta-llama/{OTHER_BASE}"
    (root / "other-base" / "adapter_config.json").write_text(json.dumps(config))
    return root


def test_tagger_refuses_bad_adapters_and_keeps_serving(tmp_path, kafka, student_engine, sample_papers, adapter_dirs):
    settings = make_settings(tmp_path, kafka=kafka, tagger=TaggerSettings(group_id=f"tagger-{uuid.uuid4().hex[:6]}",
                                                                          batch_size=4, max_wait_ms=200))
    ensure_topics(kafka)
    store = open_store(settings.store_url)
    announce = ModelEventPublisher(kafka)
    registry = AdapterRegistry(store, announce=announce)
    watch = ProductionAdapterWatch(AdapterRegistry(store), student_engine, BASE, consumer=model_event_consumer(kafka),
                                   resync_s=3600)  # the announcements alone must reach the tagger
    producer = make_producer(kafka)
    papers = iter(sample_papers[1100:])

    def register(name: str, base: str = BASE):
        return registry.register(registry.next_version(), adapter_dirs / name, base_model=base,
                                 metrics={"rouge1_f": 99.0, "bleu3": 99.0}, training_config={}, label_snapshot={})

    def tag_some(n: int) -> set[str]:
        batch = [next(papers) for _ in range(n)]
        publish_records(producer, kafka.papers_topic, batch)
        wait_until(lambda: all(store.papers.get(p["arxiv_id"]) for p in batch), 180, f"{n} papers tagged")
        return {store.papers.get(p["arxiv_id"])[0].adapter_version for p in batch}

    try:
        with Tagger(settings, student_engine, store) as tagger:
            tagger.worker.adapter_watch = watch
            good = register("good")
            registry.promote(good.version, "test", BASE)
            wait_until(lambda: student_engine.adapter_version == good.version, 60, "the switch to the good adapter")
            assert tag_some(4) == {good.version}

            with pytest.raises(AdapterRefused, match="unreadable weights"):
                register("garbage")
            bad = {
                register("rank64").version: "greater than max_lora_rank",
                register("other-base", base=OTHER_BASE).version: "trained for base model",
            }
            for version, why in bad.items():
                base = OTHER_BASE if why.startswith("trained for") else BASE
                registry.promote(version, "test", base)  # e.g. by a trainer configured for another student
                wait_until(lambda: version in watch.refused, 60, f"the tagger's refusal of {version}")
                assert why in watch.refused[version], watch.refused[version]
                assert student_engine.adapter_version == good.version

            assert tag_some(4) == {good.version}  # same worker, same engine, still the good adapter
            assert tagger.thread.is_alive()
        print({v: watch.refused[v] for v in bad})
    finally:
        watch.close()
        announce.close()
        student_engine.use_adapter(None)
        producer.close()
        store.close()
