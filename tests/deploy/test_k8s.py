"""The Kubernetes manifests: both overlays render, every object validates offline against
the Kubernetes schemas (or, for CRDs, against the schemas in schemas/), and the shape
rules of a GPU deployment hold."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.conftest import containers, render, tool, workloads

K8S_VERSION = "1.33.0"  # the oldest Kubernetes the manifests promise to work on
SCHEMAS = Path(__file__).parent / "schemas"
CRD_SCHEMAS = {
    "keda.sh/v1alpha1": "scaledobject-keda-v1alpha1.json",
    "monitoring.coreos.com/v1": {"ServiceMonitor": "servicemonitor-monitoring-v1.json",
                                 "PodMonitor": "podmonitor-monitoring-v1.json"},
    # Strimzi 1.2.0's CRDs (packaging/install/cluster-operator/04{0,3,5}-Crd-*.yaml), made
    # strict by crd_schema.py.
    "kafka.strimzi.io/v1": {"Kafka": "strimzi-v1-kafka.json", "KafkaNodePool": "strimzi-v1-kafkanodepool.json",
                            "KafkaTopic": "strimzi-v1-kafkatopic.json"},
}
# Strimzi 1.2.0 serves only kafka.strimzi.io/v1 and runs these Kafka versions (its
# kafka-versions.yaml, `supported: true`). Update with the operator.
STRIMZI_API = "kafka.strimzi.io/v1"
STRIMZI_KAFKA_VERSIONS = {"4.2.0", "4.2.1", "4.3.0", "4.3.1"}
GPU = "nvidia.com/gpu"
GPU_POOLS = {"gpu", "gpu-multi"}
POOL_LABEL = "topictag.dev/pool"


def by_kind(objects, kind):
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_every_object_validates(rendered):
    _, objects = rendered
    for obj in objects:
        name = f'{obj["kind"]}/{obj["metadata"]["name"]}'
        # A CRD group's object under an API version without a vendored schema is unchecked: refuse it.
        groups = {api.split("/")[0] for api in CRD_SCHEMAS}
        if obj["apiVersion"].split("/")[0] in groups:
            assert obj["apiVersion"] in CRD_SCHEMAS, f"{name}: no schema for {obj['apiVersion']}"
        if obj["apiVersion"] in CRD_SCHEMAS:
            schema_file = CRD_SCHEMAS[obj["apiVersion"]]
            if isinstance(schema_file, dict):  # one schema per kind of this API group
                schema_file = schema_file[obj["kind"]]
            schema = json.loads((SCHEMAS / schema_file).read_text())
            jsonschema.validate(obj, schema)
        else:
            try:
                kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{name}: {'.'.join(map(str, exc.path))}: {exc.message}")


def test_the_expected_objects_exist():
    dev, gpu = render("dev"), render("gpu")
    for objects in (dev, gpu):
        assert {"topictag-tagger", "topictag-labeler", "topictag-gateway", "topictag-trainer",
                "topictag-trainer-beat"} <= set(by_kind(objects, "Deployment"))
        assert {"topictag-tagger", "topictag-labeler", "topictag-trainer"} <= set(by_kind(objects, "ScaledObject"))
        assert "topictag-gateway" in by_kind(objects, "HorizontalPodAutoscaler")
        assert "topictag-gateway" in by_kind(objects, "ServiceMonitor")
        assert "topictag-workers" in by_kind(objects, "PodMonitor")
        assert by_kind(objects, "PodDisruptionBudget") and by_kind(objects, "NetworkPolicy")
        pvc = by_kind(objects, "PersistentVolumeClaim")["topictag-adapters"]
        assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert "topictag-teacher" in by_kind(gpu, "Deployment") and "topictag-teacher" not in by_kind(dev, "Deployment")
    assert "topictag-teacher" in by_kind(gpu, "ScaledObject")
    assert by_kind(dev, "Kafka") and not by_kind(gpu, "Kafka")  # Strimzi only where the component is used


def test_dev_runs_one_replica_of_everything_on_the_cpu():
    objects = render("dev")
    for w in workloads(objects):
        assert w["spec"].get("replicas", 1) == 1, w["metadata"]["name"]
    for so in by_kind(objects, "ScaledObject").values():
        assert so["spec"]["maxReplicaCount"] == 1
    assert by_kind(objects, "HorizontalPodAutoscaler")["topictag-gateway"]["spec"]["maxReplicas"] == 1
    config = by_kind(objects, "ConfigMap")["topictag-config"]["data"]
    assert "TOPICTAG_STUDENT_MODEL" not in config  # unset: the embedded SmolLM2


def test_trainer_beat_is_a_singleton(rendered):
    _, objects = rendered
    beat = by_kind(objects, "Deployment")["topictag-trainer-beat"]
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"]["type"] == "Recreate"
    assert not any(t["spec"]["scaleTargetRef"]["name"] == "topictag-trainer-beat"
                   for t in by_kind(objects, "ScaledObject").values())


def _pool_rule(pod_spec) -> tuple[str, set[str]]:
    terms = pod_spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    (expr,) = [e for t in terms for e in t["matchExpressions"] if e["key"] == POOL_LABEL]
    return expr["operator"], set(expr["values"])


def test_gpu_workloads_request_gpus_and_cpu_workloads_stay_off_gpu_nodes(rendered):
    overlay, objects = rendered
    gpu_workloads = {"topictag-tagger", "topictag-trainer", "topictag-teacher"} if overlay == "gpu" else set()
    for w in workloads(objects):
        name, spec = w["metadata"]["name"], w["spec"]["template"]["spec"]
        gpus = [int(c["resources"]["limits"].get(GPU, 0)) for c in containers(w)]
        tolerates = any(t.get("key") == GPU for t in spec.get("tolerations", []))
        operator, pools = _pool_rule(spec)
        if name in gpu_workloads:
            assert sum(gpus) >= 1 and tolerates, name
            assert operator == "In" and pools <= GPU_POOLS, name
            for c in containers(w):
                assert c["resources"]["requests"].get(GPU) == c["resources"]["limits"].get(GPU), name
        else:
            assert sum(gpus) == 0 and not tolerates, name
            assert operator == "NotIn" and pools == GPU_POOLS, name


def test_teacher_tensor_parallel_matches_its_gpus():
    teacher = by_kind(render("gpu"), "Deployment")["topictag-teacher"]
    (c,) = containers(teacher)
    assert c["command"] == ["vllm", "serve"] and c["args"][0] == "meta-llama/Meta-Llama-3-70B-Instruct"
    (tp,) = [int(a.split("=", 1)[1]) for a in c["args"] if a.startswith("--tensor-parallel-size=")]
    assert tp == int(c["resources"]["limits"][GPU]) > 1
    assert _pool_rule(teacher["spec"]["template"]["spec"]) == ("In", {"gpu-multi"})
    config = by_kind(render("gpu"), "ConfigMap")["topictag-config"]["data"]
    assert config["TOPICTAG_TEACHER_BACKEND"] == "openai"
    assert urlsplit(config["TOPICTAG_TEACHER_BASE_URL"]).hostname == teacher["metadata"]["name"]


def test_every_container_has_probes_resources_and_runs_as_non_root(rendered):
    _, objects = rendered
    for w in workloads(objects):
        pod = w["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, w["metadata"]["name"]
        assert pod["securityContext"].get("runAsUser", 1) != 0
        for c in containers(w):
            where = f'{w["metadata"]["name"]}/{c["name"]}'
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert probe in c, f"{where} has no {probe}"
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"].get(part, {})), f"{where}: {part}"
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, where
            assert c["securityContext"].get("runAsUser", 1) != 0, where


def test_model_load_gets_a_long_startup_budget(rendered):
    _, objects = rendered
    tagger = by_kind(objects, "Deployment")["topictag-tagger"]
    probe = containers(tagger)[0]["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 10 * 60


def test_keda_never_scales_past_the_partitions_of_the_papers_topic(rendered):
    _, objects = rendered
    config = by_kind(objects, "ConfigMap")["topictag-config"]["data"]
    partitions = int(config["TOPICTAG_KAFKA_PARTITIONS"])
    topic = by_kind(objects, "KafkaTopic").get("papers")
    if topic:
        assert topic["spec"]["partitions"] == partitions
    deployments = by_kind(objects, "Deployment")
    for so in by_kind(objects, "ScaledObject").values():
        for trigger in [t for t in so["spec"]["triggers"] if t["type"] == "kafka"]:
            watched = by_kind(objects, "KafkaTopic").get(trigger["metadata"]["topic"])
            if watched:
                assert watched["spec"]["partitions"] >= so["spec"]["maxReplicaCount"]
        assert 0 <= so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"] <= partitions
        # KEDA owns the replica count of what it scales.
        assert "replicas" not in deployments[so["spec"]["scaleTargetRef"]["name"]]["spec"]


def test_secrets_hold_placeholders_only(rendered):
    _, objects = rendered
    for secret in by_kind(objects, "Secret").values():
        assert "data" not in secret, "base64 data hides what is in it: use stringData placeholders"
        for key, value in secret["stringData"].items():
            if "://" in value:
                assert urlsplit(value).password == "CHANGE_ME", key
            else:
                assert value == "CHANGE_ME", key
    for config in by_kind(objects, "ConfigMap").values():
        for key in config["data"]:
            assert not re.search(r"PASSWORD|API_KEY|TOKEN|SECRET", key), f"{key} belongs in the Secret"
        for url in (v for v in config["data"].values() if "://" in v):
            assert not urlsplit(url).password, url


def test_network_policies_cover_every_pod(rendered):
    _, objects = rendered
    policies = by_kind(objects, "NetworkPolicy").values()
    deny = by_kind(objects, "NetworkPolicy")["topictag-default-deny"]
    assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    for w in workloads(objects):
        labels = w["spec"]["template"]["metadata"]["labels"]
        selected = [p for p in policies if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()]
        assert deny in selected, w["metadata"]["name"]
        assert len(selected) >= 2, f'{w["metadata"]["name"]} has no policy of its own'


def test_service_monitor_scrapes_the_gateway(rendered):
    _, objects = rendered
    monitor = by_kind(objects, "ServiceMonitor")["topictag-gateway"]
    service = by_kind(objects, "Service")["topictag-gateway"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}


def test_worker_metrics_are_served_and_scraped():
    """Tagger and labeler pods serve /metrics on the port the config map names, the
    PodMonitor selects them by that port's name, and their network policy lets it in."""
    for objects in (render("dev"), render("gpu")):
        port = int(by_kind(objects, "ConfigMap")["topictag-config"]["data"]["TOPICTAG_METRICS_PORT"])
        monitor = by_kind(objects, "PodMonitor")["topictag-workers"]
        [expression] = monitor["spec"]["selector"]["matchExpressions"]
        [endpoint] = monitor["spec"]["podMetricsEndpoints"]
        assert expression["key"] == "app.kubernetes.io/name" and set(expression["values"]) == {"tagger", "labeler"}
        for name in ("topictag-tagger", "topictag-labeler"):
            pod = by_kind(objects, "Deployment")[name]["spec"]["template"]
            assert pod["metadata"]["labels"]["app.kubernetes.io/name"] in expression["values"]
            ports = {p["name"]: p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
            assert ports[endpoint["port"]] == port
            policy = by_kind(objects, "NetworkPolicy")[name]
            assert "Ingress" in policy["spec"]["policyTypes"]
            assert {"protocol": "TCP", "port": port} in [p for rule in policy["spec"]["ingress"] for p in rule["ports"]]


def consumed(objects, monkeypatch, tmp_path) -> dict[str, tuple[str, str]]:
    """(topic, consumer group) each scaled worker reads, resolved by topictag's own settings
    from the config map, as the pods would."""
    from topictag.labeler.sampling import labeler_topic
    from topictag.settings import Settings

    config = by_kind(objects, "ConfigMap")["topictag-config"]["data"]
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in [n for n in os.environ if n.startswith("TOPICTAG_")]:
        monkeypatch.delenv(name)
    for key, value in config.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    return {"topictag-tagger": (settings.kafka.papers_topic, settings.tagger.group_id),
            "topictag-labeler": (labeler_topic(settings), settings.labeler.group_id)}


def _assert_triggers_follow_the_config(objects, monkeypatch, tmp_path):
    expected = consumed(objects, monkeypatch, tmp_path)
    expected["topictag-teacher"] = expected["topictag-labeler"]  # the teacher works off the labelers' lag
    for name, so in by_kind(objects, "ScaledObject").items():
        kafka = [t for t in so["spec"]["triggers"] if t["type"] == "kafka"]
        if name == "topictag-trainer":
            assert not kafka, name  # Celery's queue in Redis: test_trainer_scales_to_zero_on_its_celery_queue
            continue
        assert kafka, name
        for trigger in kafka:
            assert (trigger["metadata"]["topic"], trigger["metadata"]["consumerGroup"]) == expected[name], name


def test_keda_triggers_watch_what_each_worker_consumes(rendered, monkeypatch, tmp_path):
    """A trigger on another topic or group than the worker's scales on a lag nobody works off."""
    _, objects = rendered
    _assert_triggers_follow_the_config(objects, monkeypatch, tmp_path)


def test_labeler_confidence_component_moves_policy_and_trigger_together(monkeypatch, tmp_path):
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    k8s = os.path.relpath(Path(__file__).resolve().parents[2] / "k8s", overlay)  # kustomize wants relative roots
    (overlay / "kustomization.yaml").write_text(
        f"resources: [{k8s}/overlays/gpu]\ncomponents: [{k8s}/components/labeler-confidence]\n")
    out = subprocess.run([tool("kubectl"), "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(overlay)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    objects = [d for d in yaml.safe_load_all(out) if d]
    assert by_kind(objects, "ConfigMap")["topictag-config"]["data"]["TOPICTAG_LABELER_POLICY"] == "confidence"
    _assert_triggers_follow_the_config(objects, monkeypatch, tmp_path)
    for name in ("topictag-labeler", "topictag-teacher"):
        (trigger,) = [t for t in by_kind(objects, "ScaledObject")[name]["spec"]["triggers"] if t["type"] == "kafka"]
        assert trigger["metadata"]["topic"] == "papers.tagged", name


def test_keda_damps_scale_down_with_the_hpa_window(rendered):
    """cooldownPeriod only acts when scaling to zero; with a minimum of 1 the knob that
    damps scale-down is the HPA behaviour's stabilization window. What scales to zero (at
    most one replica) is damped by its cooldownPeriod instead."""
    _, objects = rendered
    for name, so in by_kind(objects, "ScaledObject").items():
        if so["spec"]["minReplicaCount"] >= 1:
            assert "cooldownPeriod" not in so["spec"], f"{name}: cooldownPeriod does nothing above zero"
            behavior = so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
            assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 300, name
        else:
            assert so["spec"]["maxReplicaCount"] == 1, name
            assert so["spec"]["cooldownPeriod"] >= 300, f"{name}: set a cooldownPeriod (KEDA's default is 300 s)"


def test_images_come_from_a_registry(rendered):
    """Every topictag image is mapped by the overlay's kustomize images: block (a registry,
    and the place to pin digests)."""
    overlay, objects = rendered
    for w in workloads(objects):
        for c in containers(w):
            if "topictag/" in c["image"]:
                assert not c["image"].startswith("topictag/"), f"{overlay}: {c['image']} has no registry"


def test_rwx_volumes_name_a_storage_class(rendered):
    """The cluster's default class is usually ReadWriteOnce: an RWX claim without a class
    stays Pending."""
    _, objects = rendered
    for name, pvc in by_kind(objects, "PersistentVolumeClaim").items():
        if "ReadWriteMany" in pvc["spec"]["accessModes"]:
            assert pvc["spec"].get("storageClassName"), name


def test_strimzi_objects_use_the_served_api_and_a_supported_kafka():
    """Strimzi 1.x serves kafka.strimzi.io/v1 only: a v1beta2 object is refused on apply."""
    objects = render("dev")
    strimzi = [o for o in objects if o["apiVersion"].startswith("kafka.strimzi.io/")]
    assert {o["kind"] for o in strimzi} == {"Kafka", "KafkaNodePool", "KafkaTopic"}
    for obj in strimzi:
        assert obj["apiVersion"] == STRIMZI_API, f'{obj["kind"]}/{obj["metadata"]["name"]}'
    (kafka,) = by_kind(objects, "Kafka").values()
    assert kafka["spec"]["kafka"]["version"] in STRIMZI_KAFKA_VERSIONS
    # KRaft through node pools: at least one pool of this cluster holds the controller role.
    pools = [p for p in by_kind(objects, "KafkaNodePool").values()
             if p["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]]
    assert any("controller" in p["spec"]["roles"] for p in pools) and any("broker" in p["spec"]["roles"] for p in pools)


def test_compose_runs_the_kafka_the_cluster_runs():
    compose = yaml.safe_load((Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text())
    (kafka,) = by_kind(render("dev"), "Kafka").values()
    assert compose["services"]["kafka"]["image"] == f'apache/kafka:{kafka["spec"]["kafka"]["version"]}'


def test_worker_liveness_follows_the_run_loop_heartbeat(rendered):
    """A hung engine keeps its Kafka connections: the tagger's and labeler's liveness is the
    age of the heartbeat their run loop touches (TOPICTAG_HEARTBEAT_FILE), on a volume."""
    _, objects = rendered
    heartbeat = by_kind(objects, "ConfigMap")["topictag-config"]["data"]["TOPICTAG_HEARTBEAT_FILE"]
    for name in ("topictag-tagger", "topictag-labeler"):
        (c,) = containers(by_kind(objects, "Deployment")[name])
        command = c["livenessProbe"]["exec"]["command"]
        assert command[:3] == ["topictag-healthcheck", "progress", heartbeat], name
        assert float(command[3]) > 0, name
        assert any(Path(heartbeat).is_relative_to(m["mountPath"]) for m in c["volumeMounts"]), name


def _settings_from(objects, monkeypatch, tmp_path):
    """topictag's settings as a pod with the config map and Secret in its environment sees them."""
    from topictag.settings import Settings

    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in [n for n in os.environ if n.startswith("TOPICTAG_")]:
        monkeypatch.delenv(name)
    env = {**by_kind(objects, "ConfigMap")["topictag-config"]["data"],
           **by_kind(objects, "Secret")["topictag-secrets"]["stringData"]}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings(), env


def _trainer_env(objects) -> set[str]:
    """Keys the trainer container gets through envFrom (KEDA's *FromEnv resolve from these)."""
    (c,) = containers(by_kind(objects, "Deployment")["topictag-trainer"])
    sources = [s.get("configMapRef", s.get("secretRef"))["name"] for s in c["envFrom"]]
    found = set()
    for source in sources:
        obj = by_kind(objects, "ConfigMap").get(source) or by_kind(objects, "Secret")[source]
        found |= set(obj.get("data") or obj.get("stringData"))
    return found


def test_trainer_scales_to_zero_on_its_celery_queue(rendered, monkeypatch, tmp_path):
    """The trainer's GPU is let go when no training is queued: KEDA may take it to zero, and
    what wakes it is the length of the Redis list of its Celery queue on its own broker."""
    from topictag.trainer.celery_app import create_celery

    _, objects = rendered
    settings, env = _settings_from(objects, monkeypatch, tmp_path)
    queue = create_celery(settings).conf.task_default_queue
    so = by_kind(objects, "ScaledObject")["topictag-trainer"]
    assert so["spec"]["scaleTargetRef"]["name"] == "topictag-trainer"
    assert so["spec"]["minReplicaCount"] == 0 and so["spec"]["maxReplicaCount"] == 1
    assert "replicas" not in by_kind(objects, "Deployment")["topictag-trainer"]["spec"]
    (trigger,) = so["spec"]["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "redis" and meta["listName"] == queue
    # The scaler reads the server the worker consumes from (host:port, password, db, TLS).
    broker = urlsplit(settings.trainer.celery_broker)
    assert {meta["addressFromEnv"], meta["passwordFromEnv"]} <= _trainer_env(objects)
    assert env[meta["addressFromEnv"]] == f"{broker.hostname}:{broker.port or 6379}"
    assert env[meta["passwordFromEnv"]] == broker.password
    assert meta["databaseIndex"] == (broker.path.strip("/") or "0")
    assert meta["enableTLS"] == str(broker.scheme == "rediss").lower()
    # Each beat tick queues a check that wakes the worker: it must get back to zero in between.
    assert settings.trainer.interval_s > so["spec"]["cooldownPeriod"] + so["spec"]["pollingInterval"]


def test_scaling_the_trainer_down_never_cuts_a_training(rendered, monkeypatch, tmp_path):
    """While a training runs its task is in Redis's unacked hash, not the queue, so KEDA may
    scale the worker to zero mid-training. SIGTERM is Celery's warm shutdown (the solo pool
    finishes the task in hand): the grace period must outlast any training, whose bound is
    the visibility timeout (past it Redis hands the task out again anyway). Not the lease:
    a running training renews it."""
    from topictag.trainer.tasks import WORKER_ARGV

    _, objects = rendered
    settings, _ = _settings_from(objects, monkeypatch, tmp_path)
    trainer = by_kind(objects, "Deployment")["topictag-trainer"]
    grace = trainer["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= settings.trainer.visibility_timeout_s
    assert "--pool=solo" in WORKER_ARGV  # warm shutdown finishes the task in the worker's own process
    (c,) = containers(trainer)
    assert "preStop" not in c.get("lifecycle", {}), "a preStop hook would eat into the grace period"
    assert trainer["spec"]["strategy"]["type"] == "Recreate"


def test_teacher_scales_to_zero_on_the_labelers_work(monkeypatch, tmp_path):
    """The 4-GPU teacher sleeps when labelers have nothing for it, and wakes on their lag
    (their group, their topic, resolved from the config map) or on papers they parked."""
    objects = render("gpu")
    so = by_kind(objects, "ScaledObject")["topictag-teacher"]
    assert so["spec"]["scaleTargetRef"]["name"] == "topictag-teacher"
    assert so["spec"]["minReplicaCount"] == 0 and so["spec"]["maxReplicaCount"] == 1
    assert so["spec"]["cooldownPeriod"] >= 600  # a cold start costs minutes of model load
    assert "replicas" not in by_kind(objects, "Deployment")["topictag-teacher"]["spec"]
    topic, group = consumed(objects, monkeypatch, tmp_path)["topictag-labeler"]
    triggers = {t["type"]: t["metadata"] for t in so["spec"]["triggers"]}
    assert (triggers["kafka"]["topic"], triggers["kafka"]["consumerGroup"]) == (topic, group)
    # With no teacher the labelers park sampled papers and commit: their lag stays near zero.
    from topictag.metrics import PAPERS_PARKED_NOW

    assert PAPERS_PARKED_NOW in triggers["prometheus"]["query"]
    assert float(triggers["prometheus"]["activationThreshold"]) == 0
