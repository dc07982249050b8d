"""The Dockerfile: hadolint, one target per service (what each runs: test_entrypoints.py),
pinned bases, a non-root user, health checks and volumes."""

from __future__ import annotations

import re
import subprocess

from tests.deploy.conftest import REPO, tool

DOCKERFILE = REPO / "Dockerfile"
SERVICE_TARGETS = {"tagger", "tagger-gpu", "labeler", "trainer", "trainer-gpu", "trainer-beat", "gateway"}


def stages() -> dict[str, list[str]]:
    """Instructions of each stage, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    result: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if m := re.match(r"FROM\s+(\S+)\s+AS\s+(\S+)", line, re.I):
            current = m.group(2)
            result[current] = [line]
        elif current:
            result[current].append(line)
    return result


def instruction(lines: list[str], name: str) -> list[str]:
    return [line.split(None, 1)[1] for line in lines if line.split(None, 1)[0].upper() == name]


def inherited(stage: str, name: str) -> list[str]:
    """An instruction of a stage or the stages it is built FROM."""
    all_stages = stages()
    found = []
    while stage in all_stages:
        found = instruction(all_stages[stage], name) + found
        stage = all_stages[stage][0].split()[1]
    return found


def test_hadolint_passes():
    result = subprocess.run([tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_target_per_service():
    assert SERVICE_TARGETS <= set(stages())


def test_base_images_are_pinned():
    for stage, lines in stages().items():
        base = lines[0].split()[1]
        if base in stages():
            continue
        assert re.search(r"(@sha256:[0-9a-f]{64}|:\d+(\.\d+)+[-\w.]*)$", base), f"{stage}: {base}"


def test_services_run_as_non_root_with_health_checks_and_volumes():
    for target in SERVICE_TARGETS:
        (user,) = inherited(target, "USER")[-1:]
        assert not user.startswith(("0", "root")), target
        assert instruction(stages()[target], "HEALTHCHECK"), target
        volumes = " ".join(inherited(target, "VOLUME"))
        assert "/cache" in volumes and "/adapters" in volumes, target
        env = " ".join(inherited(target, "ENV"))
        assert "TOPICTAG_CACHE_DIR=/cache" in env and "TOPICTAG_TRAINER_ADAPTERS_DIR=/adapters" in env


def test_no_secret_is_baked_in():
    text = DOCKERFILE.read_text()
    assert not re.search(r"(PASSWORD|API_KEY|TOKEN|SECRET)\w*\s*=", text)
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", ".topictag", "test-artifacts", ".git", ".env"} <= set(ignored)



GPU_TARGETS = {"tagger-gpu", "trainer-gpu"}


def root_base(stage: str) -> str:
    """The external image a stage is built FROM, through its parent stages."""
    all_stages = stages()
    while stage in all_stages:
        stage = all_stages[stage][0].split()[1]
    return stage


def apt_installed(stage: str) -> set[str]:
    packages: set[str] = set()
    for run in inherited(stage, "RUN"):
        for install in re.findall(r"apt-get install ([^&;|]+)", run):
            packages |= {w for w in install.split() if not w.startswith("-")}
    return packages


def test_gpu_images_can_compile_triton_kernels():
    """Triton builds a C launcher per kernel at run time (a C compiler and Python.h), vLLM
    on its first kernel: a -runtime CUDA base with only python3 fails there."""
    for target in GPU_TARGETS:
        installed = apt_installed(target)
        compiler = "-devel-" in root_base(target) or installed & {"gcc", "build-essential", "clang"}
        assert compiler, f"{target}: no C compiler ({root_base(target)})"
        assert any(re.fullmatch(r"python3(\.\d+)?-dev|libpython3(\.\d+)?-dev", p) for p in installed), \
            f"{target}: no Python headers"


def test_gpu_image_cuda_matches_the_torch_build():
    """The torch wheel's CUDA (the cuXYZ index pip installs it from) is the base image's."""
    for target in GPU_TARGETS:
        cuda = re.search(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-", root_base(target))
        assert cuda, root_base(target)
        build = "gpu-build"
        assert root_base(build) == root_base(target)
        (index,) = [a for a in instruction(stages()[build], "ARG") if a.startswith("TORCH_INDEX=")]
        assert index.endswith(f"/cu{cuda.group(1)}{cuda.group(2)}"), f"{index} vs {root_base(target)}"
        assert any('--extra-index-url "$TORCH_INDEX"' in r for r in instruction(stages()[build], "RUN"))


def test_tagger_and_labeler_images_check_their_heartbeat():
    for target in ("tagger", "tagger-gpu", "labeler"):
        (check,) = instruction(stages()[target], "HEALTHCHECK")
        assert '"progress", "/data/heartbeat"' in check, target
        assert "TOPICTAG_HEARTBEAT_FILE=/data/heartbeat" in " ".join(inherited(target, "ENV")), target
