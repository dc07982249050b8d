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

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import sacrebleu
from rouge import Rouge

from topictag.schemas import Paper
from topictag.student.normalise import DANGLING_WORDS, UNCLASSIFIED
from topictag.student.prompt import FEW_SHOT

if TYPE_CHECKING:
    import pandas as pd

    from topictag.student.engine import StudentEngine

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


# -- readability: is the answer a topic a person can use? ---------------------------------

# A topic is a noun phrase. These words make it a sentence or a reply: finite forms of
# "be"/"have", modal verbs, pronouns, and the words of a summary ("This paper ...").
_SENTENCE_WORDS = frozenset(
    ["is", "are", "was", "were", "am", "be", "been", "being", "has", "have", "had", "do", "does", "did", "can", "could", "will", "would", "shall", "should", "may", "might", "must", "i", "we", "you", "he", "she", "they", "it", "our", "your", "their", "my", "this", "these", "those", "here", "there", "paper", "papers", "abstract", "summary", "article", "author", "authors"]
)


_TOKEN = re.compile(r"[^\W_]+")
_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*")


def _words(text: str) -> list[str]:
    return _WORD.findall(str(text).lower())


def is_title_copy(topic: str, title: str) -> bool:
    """The topic repeats the title: a run of the title's words (hyphens and punctuation
    aside) that covers three quarters of it or is at least 6 words long (the topic's length
    bound cuts long titles)."""
    t, words = _TOKEN.findall(str(topic).lower()), _TOKEN.findall(str(title).lower())
    if not t or not words or len(t) > len(words):
        return False
    if len(t) < 6 and len(t) < 0.75 * len(words):
        return False
    return any(words[i : i + len(t)] == t for i in range(len(words) - len(t) + 1))


def is_sentence(topic: str) -> bool:
    words = _words(topic)
    return len(words) > 12 or any(w in _SENTENCE_WORDS for w in words)


def is_cut_off(topic: str) -> bool:
    words = str(topic).strip().split()
    return bool(words) and (words[-1].lower().strip(".,;:") in DANGLING_WORDS or words[-1].endswith("-"))


def readability(topics: Sequence[str], titles: Sequence[str] | None = None) -> dict:
    """Share (%) of topics that fail as topics: a copy of the paper's title (only with
    ``titles``), a copy of one of the prompt's example topics, a sentence rather than a noun
    phrase, cut off mid-phrase, or no answer at all."""
    if not topics:
        raise ValueError("nothing to score")
    examples = {comparable(t) for _, t in FEW_SHOT}
    n = len(topics)

    def share(flags) -> float:
        return round(100 * sum(map(bool, flags)) / n, 2)

    return {
        "title_copy": None if titles is None else share(is_title_copy(t, ti) for t, ti in zip(topics, titles, strict=True)),
        "example_copy": share(comparable(t) in examples for t in topics),
        "sentence": share(is_sentence(t) for t in topics),
        "cut_off": share(is_cut_off(t) for t in topics),
        "unclassified": share(comparable(t) in ("", UNCLASSIFIED.lower()) for t in topics),
    }


def tag_frame(engine: StudentEngine, frame: pd.DataFrame, batch_size: int = 32) -> list[str]:
    """The student's topic for each row of a labels frame (abstract, optional title), in
    batches of ``batch_size``."""
    papers = [
        Paper(arxiv_id=str(r.get("arxiv_id") or f"row-{i}"), title=str(r.get("title") or ""), abstract=str(r["abstract"]))
        for i, r in enumerate(frame.to_dict(orient="records"))
    ]
    topics: list[str] = []
    for i in range(0, len(papers), batch_size):
        topics += [p.topic for p in engine.predict(papers[i : i + batch_size])]
    return topics


def score_engine(engine: StudentEngine, frame: pd.DataFrame, batch_size: int = 32) -> dict:
    """Tag a labels frame with the engine's current adapter and score it against the teacher."""
    return score(tag_frame(engine, frame, batch_size), frame["teacher_topic"].tolist())
