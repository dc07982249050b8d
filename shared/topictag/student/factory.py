"""Choosing and starting the student engine the settings ask for (vLLM, or transformers
where vLLM is not installed)."""

from __future__ import annotations

import importlib.util
import time

from topictag.settings import Settings
from topictag.student.engine import StudentEngine


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def create_engine(settings: Settings, model_path: str | None = None) -> StudentEngine:
    """The configured engine over the configured (or given) student model."""
    from topictag.student.model_files import student_model_path

    path = model_path or student_model_path(settings)
    kind = settings.student.engine
    if kind == "auto":
        kind = "vllm" if vllm_available() else "transformers"
    started = time.monotonic()
    if kind == "vllm":
        from topictag.student.vllm_engine import VllmEngine

        engine: StudentEngine = VllmEngine(settings, path)
    else:
        from topictag.student.hf_engine import TransformersEngine

        engine = TransformersEngine(settings, path)
    engine.startup_s = time.monotonic() - started
    return engine
