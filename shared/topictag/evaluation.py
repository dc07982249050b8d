"""How close the student's topics are to the teacher's: one module for the trainer, the
CLI and the benchmarks.

- ``bleu3``: corpus BLEU with n-grams up to 3 (sacrebleu, 13a tokens, lower-cased).
- ``rouge1_f``: ROUGE-1 F1 of the ``rouge`` package, averaged over papers, lower-cased.
- ``original_bleu``: the figure the original project reported as "BLEU-3": sacrebleu's
  default 4-gram BLEU over ``str(text.split())`` strings (a token list printed as text),
  kept so results compare with its table.
- ``embedding_similarity``: mean cosine similarity of all-MiniLM-L6-v2 embeddings.
- ``exact_match``: share of topics equal to the teacher's, ignoring case.
All scores are percentages. Topics are compared without surrounding quotes or case, as
the teacher sometimes quotes its answer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sacrebleu
from rouge import Rouge

_QUOTES = "\"'“”‘’`"
METRIC_KEYS = ("n", "bleu3", "rouge1_f", "original_bleu", "embedding_similarity", "exact_match")


def comparable(topic: str) -> str:
    return " ".join(str(topic).strip().strip(_QUOTES).strip().lower().split())


def score(predictions: Sequence[str], references: Sequence[str], *, embeddings: bool = True) -> dict:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        raise ValueError("nothing to score")
    preds = [comparable(p) for p in predictions]
    refs = [comparable(r) for r in references]
    bleu3 = sacrebleu.BLEU(max_ngram_order=3, lowercase=True).corpus_score(preds, [refs]).score
    original = sacrebleu.corpus_bleu([str(p.split()) for p in preds], [[str(r.split()) for r in refs]], lowercase=True)
    # The rouge package refuses empty hypotheses; an empty answer scores 0 as any miss does.
    rouge = Rouge().get_scores([p or "\u2205" for p in preds], [r or "\u2205" for r in refs], avg=True)
    result = {
        "n": len(preds),
        "bleu3": round(bleu3, 2),
        "rouge1_f": round(100 * rouge["rouge-1"]["f"], 2),
        "original_bleu": round(original.score, 2),
        "embedding_similarity": None,
        "exact_match": round(100 * float(np.mean([p == r for p, r in zip(preds, refs)])), 2),
    }
    if embeddings:
        from topictag.embeddings import embed

        a, b = embed(preds), embed(refs)
        result["embedding_similarity"] = round(100 * float(np.mean(np.sum(a * b, axis=1))), 2)
    return result
