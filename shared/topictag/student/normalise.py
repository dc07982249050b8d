"""Turn whatever a language model answered into one clean topic line."""

from __future__ import annotations

import re

MAX_TOPIC_WORDS = 12
MAX_TOPIC_CHARS = 100
UNCLASSIFIED = "Unclassified"

# Lead-ins small models put before the topic ("The topic of this paper is: ...").
_LEAD_IN = re.compile(
    r"^(?:(?:the\s+)?(?:main\s+)?(?:topic|subject|title|answer)(?:\s+of\s+(?:this|the)\s+(?:paper|abstract|article))?"
    r"\s*(?:is|would\s+be|:)\s*:?|this\s+(?:paper|abstract|article)\s+is\s+about|topic\s*:)\s*",
    re.IGNORECASE,
)
_MARKUP = re.compile(r"[*_`#]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_QUOTES = "\"'“”‘’«»`"
# Words a topic does not end on; an answer cut by a length bound ("Methods for the") loses
# them (the teacher's 750 recorded topics never end on one).
DANGLING_WORDS = frozenset(
    ["a", "an", "the", "and", "or", "but", "nor", "of", "for", "in", "on", "at", "to", "from", "by", "with", "without", "via", "using", "into", "onto", "over", "under", "between", "among", "towards", "toward", "through", "based", "as", "than", "versus", "vs", "its", "their", "our"]
)
_SMALL_WORDS = frozenset(
    ["a", "an", "and", "as", "at", "but", "by", "for", "from", "in", "into", "of", "on", "or", "over", "per", "the", "to", "under", "using", "via", "vs", "with", "without"]
)


# Sentences addressed to the model rather than describing research: "Ignore previous
# instructions and ...", "SYSTEM: ...", "Reply only with ...". Matched as imperatives at
# the start of a sentence, so papers *about* prompt injection keep their sentences (of the
# 72,574 papers in the arXiv stream, one matches: the title "Say HOLA", which is then left
# out of that paper's prompt; no abstract sentence matches).
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_INJECTION = re.compile(
    r"^(?:please\s+)?(?:now\s+)?(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+)?(?:of\s+)?"
    r"(?:the\s+|your\s+|my\s+)?(?:previous|prior|above|earlier|preceding|system|former)\b"
    r"|^(?:system|assistant|user|developer)\s*:"
    r"|^(?:please\s+)?(?:reply|respond|answer|say|print|output)\s+(?:only|just|exactly|with)\b"
    r"|^(?:please\s+)?(?:reply|respond|answer|say|print|output)\b[^.!?]{0,30}[.!?]?$"
    r"|^(?:do\s+not|don't|instead)\s+(?:give|answer|reply|respond|provide|output|write|say)\b"
    r"|\byou\s+are\s+now\b|^(?:new|updated)\s+instructions\s*:",
    re.IGNORECASE,
)


def strip_injections(text: str) -> str:
    """``text`` without sentences that give the model instructions; unchanged (line breaks
    and all) when it has none. What is left may be empty."""
    sentences = _SENTENCE.split(" ".join(text.split()))
    kept = [s for s in sentences if not _INJECTION.search(s)]
    return text if len(kept) == len(sentences) else " ".join(kept)


def normalise_topic(text: str) -> str:
    """One line, no lead-in, no quotes or trailing period, no control characters, bounded
    length, title case."""
    line = next((ln for ln in (raw.strip() for raw in text.splitlines()) if ln), "")
    line = _CONTROL.sub(" ", line)  # a stored topic never carries control characters (PostgreSQL refuses NUL)
    line = _MARKUP.sub("", line).strip()
    for _ in range(2):  # "Topic: The topic is ..." happens
        line = _LEAD_IN.sub("", line).strip()
    line = line.strip(_QUOTES + " ").rstrip(".;:,!").strip(_QUOTES + " ")
    # A parenthetical explanation after the topic is not part of it.
    if "(" in line and not line.startswith("("):
        head, _, tail = line.partition("(")
        if ")" not in tail or len(tail) > 30:
            line = head.strip()
    words = line.split()[:MAX_TOPIC_WORDS]
    line = title_case(" ".join(words))
    if len(line) > MAX_TOPIC_CHARS:
        line = line[:MAX_TOPIC_CHARS].rsplit(" ", 1)[0]
    line = line.rstrip(" -,:;")
    words = line.split()
    while len(words) > 1 and words[-1].lower() in DANGLING_WORDS:
        words.pop()
    line = " ".join(words).rstrip(" -,:;")
    return line or UNCLASSIFIED


def title_case(text: str) -> str:
    """Title case the way the teacher writes topics: acronyms and mixed case are kept."""
    out = []
    for i, word in enumerate(text.split()):
        if any(c.isupper() for c in word[1:]) or any(c.isdigit() for c in word):
            out.append(word)  # "GANs", "LoRA", "3D"
        elif i > 0 and word.lower() in _SMALL_WORDS:
            out.append(word.lower())
        else:
            out.append("-".join(p[:1].upper() + p[1:] for p in word.split("-")))
    return " ".join(out)
