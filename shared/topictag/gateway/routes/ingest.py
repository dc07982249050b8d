"""POST /v1/papers: papers sent over HTTP go onto the papers topic, like `topictag ingest`.

The request models are built from the settings, so the limits a tagger enforces on the
topic (PaperLimits) are the limits the API documents and checks: a paper over them is a
422 here instead of a dead letter later.
"""

# No `from __future__ import annotations`: FastAPI must see the body model built at run time
# as an object, not as a name to look up in this module.
import logging
import threading
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request
from kafka import KafkaProducer
from pydantic import BaseModel, Field, StringConstraints, field_validator

from topictag.gateway.auth import AUTH_ERRORS, ApiKeyDep
from topictag.gateway.protocol import ARXIV_ID, Day, errors
from topictag.schemas import Paper
from topictag.settings import KafkaSettings, Settings

log = logging.getLogger(__name__)


class BrokerUnavailable(RuntimeError):
    pass


class PaperPublisher:
    """Publishes papers on the papers topic, keyed by arxiv_id. The producer is made on the
    first call, so a gateway that is never sent a paper never needs the broker."""

    def __init__(self, kafka: KafkaSettings, timeout_s: float = 10.0):
        self.kafka = kafka
        self.timeout_s = timeout_s
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    def _get(self) -> KafkaProducer:
        from topictag.bus.kafka import make_producer

        with self._lock:
            if self._producer is None:
                ms = int(self.timeout_s * 1000)
                self._producer = make_producer(self.kafka, bootstrap_timeout_ms=ms, max_block_ms=ms)
            return self._producer

    def publish(self, papers: list[Paper]) -> None:
        """Returns once the broker acknowledged every paper; raises BrokerUnavailable otherwise."""
        if not self.kafka.bootstrap:
            raise BrokerUnavailable("no Kafka broker is configured (TOPICTAG_KAFKA_BOOTSTRAP is unset)")
        try:
            producer = self._get()
            futures = [producer.send(self.kafka.papers_topic, key=p.arxiv_id, value=p.to_bytes()) for p in papers]
            producer.flush(timeout=self.timeout_s)
            for future in futures:
                future.get(timeout=self.timeout_s)
        except Exception as exc:  # any broker failure is the same to the caller: try again later
            log.warning("publishing %d papers failed: %r", len(papers), exc)
            raise BrokerUnavailable(f"the broker did not take the papers ({exc.__class__.__name__}); try again") from None

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=10)
                self._producer = None


class IngestOut(BaseModel):
    accepted: int = Field(description="Papers the broker acknowledged; a tagger tags them shortly.")
    ids: list[str]


def router(settings: Settings) -> APIRouter:
    limits, most = settings.paper, settings.gateway.ingest_max_papers
    category = Annotated[str, StringConstraints(min_length=1, max_length=32)]

    class PaperIn(Paper):
        """A paper to tag. Its limits are the TOPICTAG_PAPER_* settings."""

        arxiv_id: str = Field(min_length=1, max_length=limits.max_id_chars, pattern=ARXIV_ID, examples=["2503.11794"])
        title: str = Field("", max_length=limits.max_title_chars)
        # Whitespace and control characters alone are no abstract (controls become spaces).
        abstract: str = Field(min_length=1, max_length=limits.max_abstract_chars, pattern=r"[^\s\x00-\x1f\x7f]")
        categories: list[category] = Field(default_factory=list, max_length=20, examples=[["cs.LG", "stat.ML"]])
        published: Day | None = Field(None, description="Day the paper appeared (YYYY-MM-DD).")

        # An API body says what its schema says: no space-separated category string (files
        # may hold one).
        @field_validator("categories", mode="before")
        @classmethod
        def _split_categories(cls, v: Any) -> Any:
            return v

    class PapersIn(BaseModel):
        papers: list[PaperIn] = Field(min_length=1, max_length=most, description=f"At most {most} papers.")

    api = APIRouter(prefix="/v1/papers", tags=["papers"])

    @api.post(
        "",
        response_model=IngestOut,
        status_code=202,
        responses=AUTH_ERRORS | errors(
            _400="The body is not JSON",
            _413=f"The body is over TOPICTAG_GATEWAY_MAX_BODY_BYTES ({settings.gateway.max_body_bytes} bytes)",
            _503="No broker configured, or it did not acknowledge the papers",
        ),
    )
    def ingest(body: PapersIn, request: Request, _: ApiKeyDep) -> IngestOut:
        """Queue papers for tagging (published on the papers topic, keyed by arxiv_id)."""
        papers: list[Paper] = list(body.papers)  # PaperIn is a Paper
        try:
            request.app.state.papers_out.publish(papers)
        except BrokerUnavailable as exc:
            raise HTTPException(503, str(exc)) from None
        return IngestOut(accepted=len(papers), ids=[p.arxiv_id for p in papers])

    return api
