"""Settings that must agree wherever topictag is configured: the settings defaults,
.env.example, docker-compose.yml, every Kubernetes overlay's config and the env blocks of
docs/*.md. Each source is resolved the way a process would see it: what it sets, else the
default."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.deploy.conftest import OVERLAYS, REPO, containers, render, workloads
from tests.deploy.test_compose import interpolate
from topictag.settings import DistillSettings, StudentSettings, TrainerSettings

DEFAULTS = {
    "TOPICTAG_STUDENT_MAX_LORA_RANK": str(StudentSettings.model_fields["max_lora_rank"].default),
    "TOPICTAG_DISTILL_LORA_RANK": str(DistillSettings.model_fields["lora_rank"].default),
    "TOPICTAG_TRAINER_EVAL_ENGINE": TrainerSettings.model_fields["eval_engine"].default,
    "TOPICTAG_STUDENT_GPU_MEMORY_UTILIZATION": str(StudentSettings.model_fields["gpu_memory_utilization"].default),
}
# The trainer's process holds the model in training (~45-50 GB of an 80 GB GPU, docs/gpu.md
# section 4): a vLLM scoring engine beside it must claim no more than this.
MAX_UTILISATION_BESIDE_TRAINING = 0.4


def _env_example() -> dict[str, str]:
    # Commented lines are the defaults it documents; uncommented ones would be set.
    text = (REPO / ".env.example").read_text()
    return dict(re.findall(r"^#? ?(TOPICTAG_\w+)=(.*)$", text, re.M))


def _compose() -> dict[str, dict[str, str]]:
    services = interpolate(yaml.safe_load((REPO / "docker-compose.yml").read_text()))["services"]
    return {f"docker-compose.yml:{name}": {k: str(v) for k, v in (s.get("environment") or {}).items()}
            for name, s in services.items() if "build" in s}


def _k8s() -> dict[str, dict[str, str]]:
    sources = {}
    for overlay in OVERLAYS:
        objects = render(overlay)
        (config,) = [o["data"] for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "topictag-config"]
        for w in workloads(objects):
            for c in containers(w):
                env = {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}
                sources[f"k8s/overlays/{overlay}:{w['metadata']['name']}/{c['name']}"] = {**config, **env}
    return sources


def _docs() -> dict[str, dict[str, str]]:
    sources = {}
    for path in sorted((REPO / "docs").glob("*.md")):
        for i, block in enumerate(re.findall(r"^```\w*\n(.*?)^```", path.read_text(), re.M | re.S)):
            env = dict(re.findall(r"^(TOPICTAG_\w+)=(\S+)", block, re.M))
            if env:
                sources[f"docs/{path.name} block {i}"] = env
    return sources


def sources() -> dict[str, dict[str, str]]:
    return {"settings defaults": {}, ".env.example": _env_example(), **_compose(), **_k8s(), **_docs()}


@pytest.fixture(scope="module")
def resolved() -> dict[str, dict[str, str]]:
    return {name: {**DEFAULTS, **env} for name, env in sources().items()}


def test_the_sources_are_found(resolved):
    assert any(n.startswith("docs/gpu.md") for n in resolved)
    assert any(n.startswith("k8s/overlays/gpu") for n in resolved)
    assert "docker-compose.yml:tagger-gpu" in resolved


def test_served_lora_rank_admits_the_trained_rank(resolved):
    """vLLM refuses an adapter whose rank exceeds max_lora_rank: every adapter the trainer makes."""
    for name, env in resolved.items():
        served, trained = int(env["TOPICTAG_STUDENT_MAX_LORA_RANK"]), int(env["TOPICTAG_DISTILL_LORA_RANK"])
        assert served >= trained, f"{name}: max LoRA rank {served} < trained rank {trained}"


def test_trainer_scores_with_vllm_only_beside_room_for_training(resolved):
    for name, env in resolved.items():
        if env["TOPICTAG_TRAINER_EVAL_ENGINE"] in ("vllm", "auto"):
            share = float(env["TOPICTAG_STUDENT_GPU_MEMORY_UTILIZATION"])
            assert share <= MAX_UTILISATION_BESIDE_TRAINING, (
                f"{name}: a vLLM scoring engine at {share} of the GPU leaves no room for the model in training")
