"""Every container that runs topictag (Dockerfile targets, compose services, Kubernetes
containers) runs its service's `services/<name>/main.py`, and each main and the `topictag`
CLI command of the same name reach the same service call (one code path)."""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import json
import os
import re
import runpy
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from tests.deploy.conftest import OVERLAYS, REPO, containers, render, workloads
from tests.deploy.test_docker import SERVICE_TARGETS, inherited, instruction, stages
from topictag.bus.embedded import free_port
from topictag.cli import app
from topictag.settings import Settings

IMAGE_ROOT = "/opt/topictag"
# The one library function each service's main calls.
SERVICE_CALLS = {
    "tagger": ("topictag.tagger.service", "run_tagger"),
    "labeler": ("topictag.labeler.service", "run_labeler"),
    "gateway": ("topictag.gateway.app", "serve"),
    "trainer": ("topictag.trainer.tasks", "run_trainer"),
}
# What each image runs: its service and the main's arguments.
TARGETS = {
    "tagger": ("tagger", []),
    "tagger-gpu": ("tagger", []),
    "labeler": ("labeler", []),
    "gateway": ("gateway", []),
    "trainer": ("trainer", ["worker"]),
    "trainer-gpu": ("trainer", ["worker"]),
    "trainer-beat": ("trainer", ["beat"]),
}
# (service, its main's arguments, the same through the CLI, the logging name).
INVOCATIONS = [
    ("tagger", [], ["tagger"], "tagger"),
    ("labeler", [], ["labeler"], "labeler"),
    ("gateway", [], ["gateway"], "gateway"),
    ("trainer", ["worker"], ["trainer", "worker"], "trainer"),
    ("trainer", ["worker", "--beat"], ["trainer", "worker", "--beat"], "trainer"),
    ("trainer", ["beat"], ["trainer", "beat"], "trainer-beat"),
]


def main_path(service: str):
    return REPO / "services" / service / "main.py"


def image_argv(target: str) -> list[str]:
    """ENTRYPOINT + CMD of a service target (both set in the target's own stage: an
    ENTRYPOINT resets the CMD a stage inherits)."""
    lines = stages()[target]
    (entrypoint,) = instruction(lines, "ENTRYPOINT")
    return json.loads(entrypoint) + [a for cmd in instruction(lines, "CMD") for a in json.loads(cmd)]


def test_every_service_target_is_covered():
    assert set(TARGETS) == SERVICE_TARGETS
    assert {service for service, *_ in INVOCATIONS} == set(SERVICE_CALLS) == {p.parent.name for p in REPO.glob("services/*/main.py")}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_images_run_their_service_main(target):
    service, args = TARGETS[target]
    assert image_argv(target) == ["python", f"{IMAGE_ROOT}/services/{service}/main.py", *args]
    assert any(i[:2] == (service, args) for i in INVOCATIONS), "arguments no test runs the main with"
    assert f"services {IMAGE_ROOT}/services" in inherited(target, "COPY")


def test_the_services_folder_reaches_the_build_context():
    patterns = [p for p in (REPO / ".dockerignore").read_text().split() if not p.startswith("#")]
    for path in ("services", *(str(p.relative_to(REPO)) for p in REPO.glob("services/*/main.py"))):
        assert not any(fnmatch.fnmatch(path, p) for p in patterns), path


def test_gateway_image_binds_every_interface():
    # The main binds TOPICTAG_GATEWAY_HOST (127.0.0.1 by default): unreachable from outside a container.
    assert "TOPICTAG_GATEWAY_HOST=0.0.0.0" in " ".join(inherited("gateway", "ENV"))


def test_compose_services_run_their_image():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    topictag_services = {n: s for n, s in compose["services"].items() if "build" in s}
    assert len(topictag_services) == 8
    for name, service in topictag_services.items():
        assert service["build"]["target"] in TARGETS, name
        assert service["image"].split(":")[0] == f'topictag/{service["build"]["target"]}', name
        assert "command" not in service and "entrypoint" not in service, f"{name} overrides its image's main"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubernetes_containers_run_their_image(overlay):
    seen = set()
    for w in workloads(render(overlay)):
        for c in containers(w):
            # topictag/<target>, behind the overlays' registry (kustomize images:).
            if m := re.search(r"(?:^|/)topictag/([\w.-]+?)(?:[:@]|$)", c["image"]):
                where = f'{overlay}: {w["metadata"]["name"]}/{c["name"]}'
                target = m.group(1)
                assert target in TARGETS, where
                assert "command" not in c and "args" not in c, f"{where} overrides its image's main"
                seen.add(TARGETS[target][0])
    assert seen == set(SERVICE_CALLS)


@pytest.fixture
def calls(monkeypatch) -> list[tuple]:
    """Replaces each service function and setup_logging with recorders: (service, its bound
    arguments but the settings, defaults applied) and ("logging", name)."""
    recorded: list[tuple] = []
    for service, (module, name) in SERVICE_CALLS.items():
        signature = inspect.signature(getattr(importlib.import_module(module), name))

        def record(settings, *args, service=service, signature=signature, **kwargs):
            assert isinstance(settings, Settings)
            bound = signature.bind(settings, *args, **kwargs)
            bound.apply_defaults()
            recorded.append((service, dict(list(bound.arguments.items())[1:])))

        monkeypatch.setattr(importlib.import_module(module), name, record)
    for module in ("topictag.logs", "topictag.cli.services"):
        monkeypatch.setattr(f"{module}.setup_logging", lambda name, level=None: recorded.append(("logging", name)))
    return recorded


@pytest.mark.parametrize(("service", "args", "cli_args", "log_name"), INVOCATIONS,
                         ids=[" ".join([i[0], *i[1]]) for i in INVOCATIONS])
def test_main_and_cli_make_the_same_service_call(calls, monkeypatch, service, args, cli_args, log_name):
    monkeypatch.setattr(sys, "argv", [str(main_path(service)), *args])
    runpy.run_path(str(main_path(service)), run_name="__main__")
    by_main = list(calls)
    calls.clear()
    app(args=cli_args, prog_name="topictag", standalone_mode=False)
    (_, arguments), = [c for c in by_main if c[0] == service]
    assert by_main == [("logging", log_name), (service, arguments)]
    assert calls == by_main
    if service == "trainer":
        assert arguments == {"role": args[0], "with_beat": "--beat" in args}


def test_mains_refuse_arguments_they_do_not_take():
    for service, args in [("tagger", ["tagger"]), ("trainer", []), ("trainer", ["beat", "--beat"])]:
        done = subprocess.run([sys.executable, str(main_path(service)), *args], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 2 and "usage: main.py" in done.stderr, (service, args, done.stderr)


@contextmanager
def running_main(tmp_path, service: str, *args: str, **env: str) -> Iterator[tuple[subprocess.Popen, Path]]:
    """``services/<service>/main.py`` as a process, with its own data dir and SQLite store
    and no broker settings; yields it and its log."""
    env = os.environ | {"TOPICTAG_DATA_DIR": str(tmp_path / "data"),
                        "TOPICTAG_STORE_URL": f"sqlite:///{tmp_path / 'store.db'}"} | env
    for name in ("TOPICTAG_KAFKA_BOOTSTRAP", "TOPICTAG_TRAINER_CELERY_BROKER"):
        env.pop(name, None)
    log = tmp_path / f"{service}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(main_path(service)), *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=out)
    try:
        yield proc, log
    finally:
        proc.terminate()
        proc.wait(10)


def wait_for(proc: subprocess.Popen, log: Path, ready, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"exited with {proc.returncode}: {log.read_text()[-2000:]}"
        assert time.monotonic() < deadline, f"not ready in {timeout} s (log: {log})"
        time.sleep(0.2)


def test_gateway_main_serves(tmp_path):
    """Real start, no model needed. The tagger, labeler and trainer worker mains start for
    real in tests/reliability/test_faults.py, tests/integration/test_worker_metrics.py and
    tests/e2e/test_loop.py."""
    port = free_port()

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    with running_main(tmp_path, "gateway", TOPICTAG_GATEWAY_PORT=str(port)) as (proc, log):
        wait_for(proc, log, healthy)


def test_trainer_beat_main_schedules_trainings(tmp_path):
    """Without a Celery broker setting the trainer queues on the filesystem under the data
    directory: beat's first tick lands there as a message."""
    queue = tmp_path / "data" / "celery" / "queue"
    with running_main(tmp_path, "trainer", "beat", TOPICTAG_TRAINER_INTERVAL_S="1") as (proc, log):
        wait_for(proc, log, lambda: queue.is_dir() and any(queue.iterdir()))
    message = json.loads(next(queue.iterdir()).read_text())
    assert message["headers"]["task"] == "topictag.maybe_train"
