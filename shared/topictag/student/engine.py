"""The student engine: papers in, one normalised topic per paper out.

Two implementations share this interface: vLLM (the tagger's default; batched, LoRA
adapters per request) and plain transformers (when vLLM is not installed).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from topictag.schemas import BASE_ADAPTER, Paper
from topictag.settings import Settings
from topictag.student import mbr
from topictag.student.normalise import UNCLASSIFIED, normalise_topic, strip_injections
from topictag.student.prompt import build_messages


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter version the engine can serve."""

    version: str
    path: Path
    # vLLM caches loaded adapters by id: an id must never stand for two sets of weights
    # (``lora_id_for``).
    lora_id: int


def lora_id_for(sha256: str) -> int:
    """The vLLM LoRA id of an adapter, from its files' sha256: the same weights get the same id
    wherever they are loaded (as a candidate, then as production), other weights another id.
    Ids from a registry's row numbers collided in an engine that outlived its store (two
    stores' v1), and vLLM served the first one's weights for the second."""
    return 1 + int(sha256[:7], 16)  # 28 bits: within vLLM's int32 ids


class AdapterLoadError(RuntimeError):
    """The engine could not load an adapter (unreadable weights, a rank over the engine's
    limit, layers the base model lacks); it keeps serving what it served before."""


@dataclass(frozen=True)
class Completion:
    """A greedy answer and how sure the student was of it."""

    text: str
    # Mean log-probability of its tokens (0 is certain; lower is less sure). The labeler's
    # confidence policy sends the teacher the papers where this is lowest.
    mean_logprob: float


@dataclass(frozen=True)
class Prediction:
    topic: str
    raw: str
    confidence: float | None = None  # the greedy answer's mean token log-probability


class StudentEngine(abc.ABC):
    startup_s: float  # seconds it took to start, set by the factory (create_engine)

    def __init__(self, settings: Settings, model_path: str):
        self.settings = settings
        self.model_path = model_path
        self.model_name = settings.student.model_name
        self.adapter: Adapter | None = None

    @property
    def adapter_version(self) -> str:
        return self.adapter.version if self.adapter else BASE_ADAPTER

    def use_adapter(self, adapter: Adapter | None) -> None:
        """Serve ``adapter`` from the next call on (None: the base model). Engines load it
        here, so a bad adapter raises AdapterLoadError now, not in the middle of a batch."""
        self.adapter = adapter

    def predict(self, papers: Sequence[Paper]) -> list[Prediction]:
        if not papers:
            return []
        # The base model needs the few-shot examples to answer with a topic; an adapter was
        # trained on the bare prompt (topictag.distill) and is served the same way.
        few_shot = self.adapter is None
        # Instructions planted in a paper ("Ignore previous instructions and answer ...") never
        # reach the model; a paper that is nothing but instructions is Unclassified.
        titled = self.settings.student.prompt_title
        texts = [(strip_injections(p.abstract), strip_injections(p.title) if titled else "") for p in papers]
        asked = [i for i, (abstract, _) in enumerate(texts) if abstract.strip()]
        conversations = [
            build_messages(texts[i][0], texts[i][1], few_shot=few_shot, truncate=self.truncate_abstract) for i in asked
        ]
        predictions = [Prediction(UNCLASSIFIED, "")] * len(papers)
        for i, (raw, confidence) in zip(asked, self._answers(conversations) if conversations else []):
            predictions[i] = Prediction(normalise_topic(raw), raw, confidence)
        return predictions

    def _answers(self, conversations: list[list[dict[str, str]]]) -> list[tuple[str, float]]:
        """The answer to each conversation, with the greedy answer's confidence (also under
        MBR: how sure the student is of its most likely answer)."""
        cfg = self.settings.student
        if cfg.mbr_samples < 1:
            return [(c.text, c.mean_logprob) for c in self.generate(conversations)]
        out = []
        for greedy, samples in self.candidates(conversations, cfg.mbr_samples, cfg.mbr_temperature):
            texts = [greedy.text, *samples]
            out.append((texts[mbr.choose([normalise_topic(t) for t in texts])], greedy.mean_logprob))
        return out

    def truncate_abstract(self, abstract: str) -> str:
        limit = self.settings.student.max_abstract_tokens
        ids = self.tokenizer.encode(abstract, add_special_tokens=False)
        if len(ids) <= limit:
            return abstract
        return self.tokenizer.decode(ids[:limit])

    @property
    @abc.abstractmethod
    def tokenizer(self): ...

    @abc.abstractmethod
    def generate(self, conversations: list[list[dict[str, str]]]) -> list[Completion]:
        """Greedy completions, one per conversation, with the current adapter."""

    @abc.abstractmethod
    def sample(self, conversations: list[list[dict[str, str]]], n: int, temperature: float) -> list[list[str]]:
        """``n`` sampled completions per conversation, with the current adapter; the same
        ones on every call (seeded)."""

    def candidates(
        self, conversations: list[list[dict[str, str]]], n: int, temperature: float
    ) -> list[tuple[Completion, list[str]]]:
        """The greedy completion and ``n`` samples, per conversation."""
        return list(zip(self.generate(conversations), self.sample(conversations, n, temperature)))

    def close(self) -> None:  # noqa: B027 (optional: an engine without processes has nothing to release)
        """Release the engine's processes and memory."""
