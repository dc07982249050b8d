"""POST /v1/papers: papers sent over HTTP go onto the papers topic, like `topictag ingest`.

The request models are built from the settings, so the limits a tagger enforces on the
topic (PaperLimits) are the limits the API documents and checks: a paper over them is a
422 here instead of a dead letter later.
"""

# No `from __future__ import annotations`: FastAPI must see the body model built at run time
# as an object, not as a name to look up in this module.
import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field, StringConstraints, field_validator

from topictag.backoff import Backoff
from topictag.bus.kafka import make_producer
from topictag.bus.publish import Message, ReliablePublisher
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

    # A client waits on the answer: one quick resend, then 503 and the client tries again.
    ATTEMPTS = 2

    def __init__(self, kafka: KafkaSettings, timeout_s: float = 10.0):
        ms = int(timeout_s * 1000)
        self.kafka = kafka
        self.publisher = ReliablePublisher(
            factory=lambda: make_producer(kafka, bootstrap_timeout_ms=ms, max_block_ms=ms),
            backoff=Backoff(0.2, 1.0), send_timeout_s=timeout_s,
        )

    def publish(self, papers: list[Paper]) -> None:
        """Returns once the broker acknowledged every paper; raises BrokerUnavailable otherwise."""
        if not self.kafka.bootstrap:
            raise BrokerUnavailable("no Kafka broker is configured (TOPICTAG_KAFKA_BOOTSTRAP is unset)")
        messages = [Message(self.kafka.papers_topic, p.to_bytes(), key=p.arxiv_id) for p in papers]
        delivery = self.publisher.deliver(messages, attempts=self.ATTEMPTS)
        if not delivery.complete:  # any broker failure is the same to the caller: try again later
            _, error = delivery.failed[0]
            log.warning("publishing %d papers failed: %s", len(papers), error)
            raise BrokerUnavailable(f"the broker did not take the papers ({error.split(':', 1)[0]}); try again")

    def close(self) -> None:
        self.publisher.close(timeout=10)


class IngestOut(BaseModel):
    accepted: int = Field(description="Papers the broker acknowledged; a tagger tags them shortly.")
    ids: list[str]


def router(settings: Settings) -> APIRouter:
    limits, most = settings.paper, settings.gateway.ingest_max_papers
    # Measured as sent, as the schema says (the model strips strings first by default):
    # "\fcs.LG" plus 27 more characters is over the limit even though it strips to 32.
    category = Annotated[str, StringConstraints(min_length=1, max_length=32, strip_whitespace=False)]

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
