"""Every container that runs topictag (Dockerfile targets, compose services, Kubernetes
containers) runs a command the `topictag` CLI really has."""

from __future__ import annotations

import pytest
import typer
import yaml

from tests.deploy.conftest import OVERLAYS, REPO, containers, render, workloads
from tests.deploy.test_docker import service_commands
from topictag.cli import app


def cli_commands() -> set[tuple[str, ...]]:
    """Paths of the runnable commands: ("tagger",), ("trainer", "worker"), ..."""
    found = set()

    def walk(command, path: tuple[str, ...]) -> None:
        # Duck-typed: recent typer builds on its own copy of click.
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, path + (name,))
        else:
            found.add(path)

    walk(typer.main.get_command(app), ())
    return found


def assert_runs_cli(argv: list[str], where: str) -> None:
    words = tuple(a for a in argv if not a.startswith("-"))
    assert any(words[: len(c)] == c for c in cli_commands()), f"{where}: `topictag {' '.join(argv)}` is no CLI command"


def test_the_services_exist_in_the_cli():
    assert {("tagger",), ("gateway",), ("labeler",), ("trainer", "worker"), ("trainer", "beat")} <= cli_commands()


def test_dockerfile_targets():
    for target, argv in service_commands().items():
        assert argv[0] == "topictag", target
        assert_runs_cli(argv[1:], f"Dockerfile target {target}")


def test_compose_services():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    topictag_services = {n: s for n, s in compose["services"].items() if "build" in s}
    assert len(topictag_services) == 8
    for name, service in topictag_services.items():
        assert_runs_cli(service["command"], f"compose service {name}")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubernetes_containers(overlay):
    for w in workloads(render(overlay)):
        for c in containers(w):
            if c["image"].startswith("topictag/"):
                assert "command" not in c, "the image's ENTRYPOINT is topictag"
                assert_runs_cli(c["args"], f'{overlay}: {w["metadata"]["name"]}/{c["name"]}')
