"""docker-compose.yml: valid against the Compose Specification's JSON schema (the copy
check-jsonschema vendors, so no network), and the shape of the stack."""

from __future__ import annotations

import json
import re
from importlib import resources

import jsonschema
import pytest
import yaml

from tests.deploy.conftest import REPO

TOPICTAG_SERVICES = {"gateway", "trainer-beat", "tagger", "labeler", "trainer", "tagger-gpu", "trainer-gpu", "labeler-gpu"}
INFRA = {"kafka", "kafka-init", "postgres", "redis"}
VARIABLE = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")


def interpolate(node):
    """Compose's own variable substitution, with every variable unset: ${X:-d} -> d,
    ${X:?msg} -> a stand-in value, $$ -> $."""
    if isinstance(node, dict):
        return {k: interpolate(v) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v) for v in node]
    if isinstance(node, str):
        node = VARIABLE.sub(lambda m: "set-in-env" if ":?" in m.group(0) else (m.group(2) or ""), node)
        return node.replace("$$", "$")
    return node


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_validates_against_the_compose_specification(compose):
    schema = json.loads(
        resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    )
    jsonschema.validate(interpolate(compose), schema)


def test_profiles(compose):
    services = compose["services"]
    always = {n for n, s in services.items() if "profiles" not in s}
    assert always == INFRA | {"gateway", "trainer-beat"}
    assert {n for n, s in services.items() if s.get("profiles") == ["cpu"]} == {"tagger", "labeler", "trainer"}
    assert {n for n, s in services.items() if s.get("profiles") == ["gpu"]} == {
        "tagger-gpu", "labeler-gpu", "trainer-gpu", "teacher"}


def test_every_long_running_service_has_a_healthcheck(compose):
    for name, service in compose["services"].items():
        if name != "kafka-init":
            assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name


def test_services_wait_for_topics_and_healthy_dependencies(compose):
    services = compose["services"]
    assert services["kafka-init"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    specs = re.search(r"for spec in ([^;]+);", services["kafka-init"]["command"][0]).group(1).split()
    partitions = dict(spec.split(":") for spec in specs)
    assert set(partitions) == {"papers", "papers.tagged", "papers.dlq", "labels", "models"}
    # What the services would create themselves, had the topic been missing.
    assert partitions["papers"] == interpolate(compose["x-topictag-env"])["TOPICTAG_KAFKA_PARTITIONS"]
    for name in TOPICTAG_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["kafka-init"] == {"condition": "service_completed_successfully"}, name
        assert depends["postgres"]["condition"] == depends["redis"]["condition"] == "service_healthy", name
    assert services["labeler-gpu"]["depends_on"]["teacher"] == {"condition": "service_healthy"}


def test_volumes(compose):
    assert set(compose["volumes"]) == {"kafka-data", "postgres-data", "model-cache", "adapters"}
    services = compose["services"]
    mounts = {name: {v.split(":")[0]: v.split(":")[1] for v in s.get("volumes", [])} for name, s in services.items()}
    assert mounts["kafka"]["kafka-data"] and mounts["postgres"]["postgres-data"]
    # The trainers write adapters where the taggers read them.
    for name in ("tagger", "tagger-gpu", "trainer", "trainer-gpu"):
        assert mounts[name]["adapters"] == "/adapters" and mounts[name]["model-cache"] == "/cache", name


def gpu_ids(service: dict) -> list[str]:
    """The host GPUs a service reserves, by id (a `count` reservation names none)."""
    devices = service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
    return [i for d in devices if "gpu" in d.get("capabilities", []) for i in d.get("device_ids", [])]


def test_gpu_services_get_distinct_gpus(compose):
    """`count: N` reserves the first N GPUs for every service alike: the tagger, trainer and
    teacher would all share GPU 0. Ids, with the defaults, are disjoint."""
    services = interpolate(compose)["services"]
    gpu_services = {n for n, s in services.items() if "gpu" in s.get("profiles", [])
                    and s.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")}
    assert gpu_services == {"tagger-gpu", "trainer-gpu", "teacher"}
    seen: dict[str, str] = {}
    for name in sorted(gpu_services):
        for device in services[name]["deploy"]["resources"]["reservations"]["devices"]:
            assert "count" not in device, f"{name}: reserve GPUs by device_ids, not count"
        ids = gpu_ids(services[name])
        assert ids and all(i.isdigit() for i in ids), name
        for i in ids:
            assert i not in seen, f"GPU {i}: both {seen[i]} and {name}"
            seen[i] = name
    # Each id is an overridable variable with a default, documented in .env.example.
    env_example = (REPO / ".env.example").read_text()
    for name in gpu_services:
        for raw in gpu_ids(compose["services"][name]):
            variable = VARIABLE.fullmatch(raw)
            assert variable and variable.group(2), f"{name}: {raw}"
            assert re.search(rf"^{variable.group(1)}={variable.group(2)}$", env_example, re.M), raw


def test_gpu_profile(compose):
    services = interpolate(compose)["services"]
    for name in ("tagger-gpu", "trainer-gpu"):
        (device,) = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert len(device["device_ids"]) == 1 and device["capabilities"] == ["gpu"], name
        assert services[name]["environment"]["TOPICTAG_STUDENT_MODEL"] == "meta-llama/Meta-Llama-3-8B-Instruct"
    teacher = services["teacher"]
    assert teacher["entrypoint"] == ["vllm", "serve"]
    assert teacher["command"][0] == "meta-llama/Meta-Llama-3-70B-Instruct"
    assert f"--tensor-parallel-size={len(gpu_ids(teacher))}" in teacher["command"]
    labeler = services["labeler-gpu"]["environment"]
    assert labeler["TOPICTAG_TEACHER_BACKEND"] == "openai"
    assert labeler["TOPICTAG_TEACHER_BASE_URL"].startswith("http://teacher:")


def test_kafka_runs_kraft_from_the_official_image(compose):
    kafka = compose["services"]["kafka"]
    assert re.fullmatch(r"apache/kafka:\d+\.\d+\.\d+", kafka["image"])
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_images_are_pinned_and_no_secret_is_written_down(compose):
    for name, service in compose["services"].items():
        image = service["image"]
        assert not image.endswith(":latest") and ":" in image, name
    text = (REPO / "docker-compose.yml").read_text()
    for variable in ("POSTGRES_PASSWORD", "REDIS_PASSWORD"):
        # Required from .env, never defaulted in the file.
        assert re.findall(rf"\$\{{{variable}(:?[-?])", text) and all(
            op == ":?" for op in re.findall(rf"\$\{{{variable}(:?[-?])", text)), variable


def test_workers_are_healthy_while_their_run_loop_beats(compose):
    """A hung engine keeps its Kafka connections; the heartbeat's age is what says it works."""
    services = interpolate(compose)["services"]
    for name in ("tagger", "tagger-gpu", "labeler", "labeler-gpu"):
        test = services[name]["healthcheck"]["test"]
        heartbeat = services[name]["environment"]["TOPICTAG_HEARTBEAT_FILE"]
        assert test[:4] == ["CMD", "topictag-healthcheck", "progress", heartbeat], name
        assert float(test[4]) > 0, name
