"""The ``topictag`` command: runs every service, ingests files, prepares models, evaluates."""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, Optional

import typer
from typer.core import TyperGroup

from topictag.bootstrap import Parts
from topictag.logs import setup_logging
from topictag.settings import get_settings

if TYPE_CHECKING:
    from topictag.adapters.registry import AdapterRegistry
    from topictag.store import Store

app = typer.Typer(
    help="Streaming topic tagging of research papers with a self-distilling student LLM.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _default_papers() -> Path:
    return get_settings().sample_papers_file


@app.command()
def demo(
    papers: Annotated[Optional[Path], typer.Option(help="JSONL, CSV or Parquet file of papers.")] = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Publish only the first N papers.")] = None,
    exit_when_done: Annotated[bool, typer.Option(help="Exit once every paper is processed.")] = False,
    loop: Annotated[
        bool,
        typer.Option(help="Also run the labeler (recorded teacher) and the trainer, and stream the teacher's "
                     "papers first, so an adapter is trained, promoted and swapped in while the demo runs."),
    ] = False,
) -> None:
    """Run the whole system on this machine and stream papers through it.

    Prints progress to stderr; with --exit-when-done, the last line on stdout is a JSON
    summary (papers, tagged, dlq, seconds, papers_per_s, gateway_url).
    """
    from topictag.demo import Demo

    setup_logging("demo", level="WARNING")
    settings = get_settings()
    papers = papers or _default_papers()
    if not papers.exists():
        raise typer.BadParameter(f"no such file: {papers}", param_hint="--papers")
    try:
        summary = Demo(settings, papers, limit, loop=loop).run(exit_when_done)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return
    print(json.dumps(summary))
    if not summary["gateway_ok"]:
        raise typer.Exit(1)


@app.command()
def tagger() -> None:
    """Run a tagger worker: consume papers, tag them with the student, store the topics."""
    from topictag.tagger.service import run_tagger

    setup_logging("tagger")
    run_tagger(get_settings())


@app.command()
def labeler() -> None:
    """Run a labeler worker: send a sampled share of papers to the teacher, store its labels."""
    from topictag.labeler.service import run_labeler

    setup_logging("labeler")
    run_labeler(get_settings())


@app.command()
def gateway(
    host: Annotated[Optional[str], typer.Option(help="Interface to bind (default from settings).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port to bind (default from settings).")] = None,
) -> None:
    """Serve the HTTP API (docs at /docs)."""
    from topictag.gateway.app import serve

    setup_logging("gateway")
    serve(get_settings(), host, port)


@app.command()
def broker(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1; 0 picks a free one.")] = 9092,
) -> None:
    """Run the embedded Kafka-protocol broker (in memory) in the foreground."""
    from topictag.bus.embedded import EmbeddedBroker

    with EmbeddedBroker(port) as b:
        typer.echo(f"broker at {b.bootstrap}; Ctrl-C stops it")
        assert b.process is not None  # started on entering the with
        try:
            b.process.wait()
        except KeyboardInterrupt:
            pass


class _IngestGroup(TyperGroup):
    """`ingest FILE` stays the short form of `ingest file FILE` beside `ingest arxiv`: a first
    argument that is no subcommand (nor --help) is taken as the file command's."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["file", *args]
        return super().parse_args(ctx, args)


ingest_app = typer.Typer(
    cls=_IngestGroup,
    no_args_is_help=True,
    help="Publish papers to the papers topic (TOPICTAG_KAFKA_BOOTSTRAP), from a file or live from arXiv.\n\n"
    "topictag ingest FILE [--limit N]   (short for: topictag ingest file FILE)\n\n"
    "topictag ingest arxiv [--category C ...] [--since DATE] [--follow] [--source api|oai] [--limit N]",
)
app.add_typer(ingest_app, name="ingest")


@ingest_app.command("file")
def ingest_file(
    path: Annotated[Path, typer.Argument(help="JSONL, CSV or Parquet file of papers.")],
    limit: Annotated[Optional[int], typer.Option(min=1, help="Publish only the first N rows.")] = None,
) -> None:
    """Publish papers from a file to the papers topic (TOPICTAG_KAFKA_BOOTSTRAP)."""
    from topictag.bus.kafka import ensure_topics, make_producer
    from topictag.files import iter_paper_records
    from topictag.ingest import PublishError, publish_records

    settings = get_settings()
    if not settings.kafka.bootstrap:
        raise typer.BadParameter("set TOPICTAG_KAFKA_BOOTSTRAP to the broker to publish to")
    if not path.exists():
        raise typer.BadParameter(f"no such file: {path}", param_hint="PATH")
    ensure_topics(settings.kafka)
    producer = make_producer(settings.kafka)
    try:
        report = publish_records(producer, settings.kafka.papers_topic, iter_paper_records(path, limit))
    except PublishError as exc:
        typer.echo(f"error: {exc}. Publishing the file again is safe: papers are stored once by arxiv_id.", err=True)
        raise typer.Exit(1) from None
    finally:
        producer.close()
    typer.echo(f"published {report.published} papers to {settings.kafka.papers_topic}")


@ingest_app.command("arxiv")
def ingest_arxiv(
    category: Annotated[
        Optional[list[str]],
        typer.Option(help="arXiv category, e.g. cs.LG; repeat for more. Default: TOPICTAG_ARXIV_CATEGORIES."),
    ] = None,
    since: Annotated[
        Optional[datetime],
        typer.Option(formats=["%Y-%m-%d"], help="Papers from this day on. Default: TOPICTAG_ARXIV_LOOKBACK_DAYS ago."),
    ] = None,
    follow: Annotated[
        bool, typer.Option(help="Poll again every TOPICTAG_ARXIV_FOLLOW_INTERVAL_S until Ctrl-C.")
    ] = False,
    source: Annotated[
        Literal["api", "oai"], typer.Option(help="arXiv's search API or its OAI-PMH interface.")
    ] = "api",
    limit: Annotated[Optional[int], typer.Option(min=1, help="Stop after publishing N papers.")] = None,
) -> None:
    """Poll arXiv for new papers (and new versions) and publish each once to the papers topic."""
    from topictag.bus.kafka import ensure_topics, make_producer
    from topictag.ingest import PublishError, publish_records
    from topictag.sources.arxiv import ArxivError, ArxivIngest, SeenVersions

    setup_logging("ingest", level="WARNING")
    settings = get_settings()
    if not settings.kafka.bootstrap:
        raise typer.BadParameter("set TOPICTAG_KAFKA_BOOTSTRAP to the broker to publish to")
    topic = settings.kafka.papers_topic
    seen = SeenVersions(settings.arxiv_seen_file)
    ensure_topics(settings.kafka)
    producer = make_producer(settings.kafka)
    poller = ArxivIngest(
        settings.arxiv,
        settings.paper,
        seen,
        lambda records: publish_records(producer, topic, records),
        protocol=source,
        categories=category,
        since=since.date() if since else None,
        limit=limit,
    )
    def _stop(signum, _frame):
        # A flag, not KeyboardInterrupt: an exception raised wherever the signal lands can be
        # caught on its way up (a follower once went on passing after Ctrl-C). A second
        # Ctrl-C interrupts at once.
        typer.echo(f"{signal.Signals(signum).name}: stopping after the page being published", err=True)
        poller.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    failed = None
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if follow:
            poller.follow(on_pass=lambda s: typer.echo(f"pass: {s}"))
        else:
            poller.poll_once()
    except KeyboardInterrupt:
        typer.echo("stopped", err=True)
    except (ArxivError, PublishError) as exc:
        failed = exc
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        poller.close()
        producer.close()
    typer.echo(f"arxiv {source} to {topic}: {poller.total}")
    if failed:
        typer.echo(f"error: {failed}. Running again is safe: what was published is remembered in "
                   f"{settings.arxiv_seen_file}.", err=True)
        raise typer.Exit(1)


@app.command("prepare-model")
def prepare_model() -> None:
    """Prepare the student model once (dequantise the bundled SmolLM2 into the cache)."""
    from topictag.student.model_files import student_model_path

    setup_logging("prepare")
    started = time.monotonic()
    path = student_model_path(get_settings())
    typer.echo(f"student model at {path} ({time.monotonic() - started:.1f} s)")


@app.command("eval")
def eval_(
    data: Annotated[Path, typer.Option(help="Labels file with abstract and teacher_topic columns.")],
    out: Annotated[Optional[Path], typer.Option(help="Write the scores here as JSON.")] = None,
    adapter: Annotated[Optional[Path], typer.Option(help="LoRA adapter folder; the base model if omitted.")] = None,
    predictions: Annotated[Optional[Path], typer.Option(help="Also write each prediction to this CSV.")] = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Score only the first N rows.")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
) -> None:
    """Tag every abstract in DATA with the student and score it against the teacher."""
    from topictag.evaluation import readability, score, tag_frame
    from topictag.files import read_labels
    from topictag.student.engine import Adapter

    setup_logging("eval", level="WARNING")
    labels = read_labels(data)
    if limit:
        labels = labels.head(limit)
    with Parts(get_settings()) as parts:
        engine = parts.student_engine
        if adapter:
            engine.use_adapter(Adapter(adapter.name, adapter, lora_id=1))
        started = time.monotonic()
        topics = tag_frame(engine, labels, batch_size)
        elapsed = time.monotonic() - started
    titles = labels["title"].astype(str).tolist() if "title" in labels.columns else None
    result = score(topics, labels["teacher_topic"].tolist()) | readability(topics, titles) | {
        "papers_per_s": round(len(labels) / elapsed, 2)}
    if predictions:
        labels.assign(prediction=topics).to_csv(predictions, index=False)
    _emit(result, out)


@app.command()
def score(
    data: Annotated[Path, typer.Option(help="CSV, JSONL or Parquet file with predictions and references.")],
    pred_column: Annotated[str, typer.Option(help="Column holding the predictions.")],
    ref_column: Annotated[str, typer.Option(help="Column holding the teacher's topics.")] = "teacher_topic",
    out: Annotated[Optional[Path], typer.Option(help="Write the scores here as JSON.")] = None,
) -> None:
    """Score predictions already in a file against the teacher (no model involved)."""
    from topictag.evaluation import score as score_topics
    from topictag.files import read_table

    frame = read_table(data)
    for column in (pred_column, ref_column):
        if column not in frame.columns:
            raise typer.BadParameter(f"{data.name} has no column {column!r}; it has {', '.join(frame.columns)}")
    _emit(score_topics(frame[pred_column].fillna("").astype(str).tolist(), frame[ref_column].astype(str).tolist()), out)


def _emit(result: dict, out: Path | None) -> None:
    text = json.dumps(result)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    typer.echo(text)


trainer_app = typer.Typer(help="The trainer: Celery worker and beat schedule.", no_args_is_help=True)
models_app = typer.Typer(help="Adapter versions: list, promote, roll back.", no_args_is_help=True)
app.add_typer(trainer_app, name="trainer")
app.add_typer(models_app, name="models")


@trainer_app.command("worker")
def trainer_worker(
    beat: Annotated[bool, typer.Option(help="Also run the beat schedule in this process.")] = False,
) -> None:
    """Run the Celery worker that trains, evaluates and promotes adapters."""
    from topictag.trainer.tasks import worker_app

    setup_logging("trainer")
    argv = ["worker", "--pool=solo", "--concurrency=1", "--loglevel=INFO",
            "--without-mingle", "--without-gossip", "--without-heartbeat", "-Q", "topictag-trainer"]
    worker_app(get_settings()).worker_main(argv + (["--beat"] if beat else []))


@trainer_app.command("beat")
def trainer_beat() -> None:
    """Run the beat schedule alone (one per deployment)."""
    from topictag.trainer.celery_app import create_celery

    setup_logging("trainer-beat")
    create_celery(get_settings()).start(["beat", "--loglevel=INFO"])


@app.command()
def train(
    wait: Annotated[bool, typer.Option(help="Train in this process instead of queueing a Celery task.")] = False,
) -> None:
    """Train an adapter from the accumulated teacher labels now."""
    settings = get_settings()
    if wait:
        from topictag.trainer.service import training_pipeline

        setup_logging("train")
        with training_pipeline(settings) as pipeline:
            outcome = pipeline.run(f"manual-{time.time_ns()}")
        typer.echo(json.dumps(outcome.__dict__))
        return
    from topictag.trainer.celery_app import request_training

    typer.echo(f"queued training {request_training(Parts(settings).task_client)}")


@app.command()
def retag(
    limit: Annotated[Optional[int], typer.Option(min=1, help="Re-tag at most N papers.")] = None,
    wait: Annotated[bool, typer.Option(help="Republish from this process instead of queueing a Celery task.")] = False,
) -> None:
    """Re-tag papers tagged by older adapter versions, newest first, at a bounded rate."""
    settings = get_settings()
    if wait:
        from topictag.trainer.service import retag_older_papers

        typer.echo(f"republished {retag_older_papers(settings, limit)} papers for re-tagging")
        return
    from topictag.trainer.celery_app import RETAG

    Parts(settings).task_client.send_task(RETAG, kwargs={"limit": limit})
    typer.echo("queued re-tag job")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    broker_timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for the broker.")] = 5.0,
) -> None:
    """Consumer lag per group, tagging rates, teacher labels, the production adapter and the
    last training. Without a reachable broker it says so and reports the rest."""
    import logging

    from topictag.status import gather_status

    setup_logging("status", level="WARNING")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # an unreachable broker is reported below
    with _store() as store:
        report = gather_status(get_settings(), store, broker_timeout_s=broker_timeout)
    if as_json:
        typer.echo(report.model_dump_json())
    else:
        _print_status(report)


def _print_status(report) -> None:
    from rich.console import Console
    from rich.table import Table

    def when(ts) -> str:
        return f"{ts:%Y-%m-%d %H:%M:%S} UTC" if ts else "-"

    console = Console()
    lag = Table("topic", "group", "lag", title="Consumer lag")
    for row in report.lag:
        lag.add_row(row.topic, row.group, "?" if row.lag is None else str(row.lag))
    console.print(lag)
    if report.broker_error:
        console.print(f"[yellow]{report.broker_error}[/yellow]")

    rates = Table("window", "papers tagged", "per minute", title=f"Tagging ({report.tagged.total} papers in all)")
    for w in report.tagged.windows:
        rates.add_row(f"last {w.minutes} min", str(w.papers), f"{w.per_minute:g}")
    console.print(rates)

    model = Table("", "", title="Labels and adapters", show_header=False)
    model.add_row("teacher labels", f"{report.teacher_labels.count} (last {when(report.teacher_labels.last_labelled_at)})")
    adapter = report.production_adapter
    model.add_row(
        "production adapter",
        f"{adapter.version}: BLEU-3 {adapter.bleu3}, ROUGE-1 F {adapter.rouge1_f}, promoted {when(adapter.promoted_at)}"
        if adapter else "base model (no adapter promoted)",
    )
    run = report.last_training
    model.add_row(
        "last training",
        f"{run.request_id}: {run.status}{f' ({run.version})' if run.version else ''}, started {when(run.started_at)}, "
        f"finished {when(run.finished_at)}; {run.detail}" if run else "none yet",
    )
    console.print(model)


@contextmanager
def _store() -> Iterator[Store]:
    """The configured store, schema upgraded, closed when the command ends."""
    with Parts(get_settings()) as parts:
        yield parts.store


@contextmanager
def _registry() -> Iterator[AdapterRegistry]:
    """The adapter registry, announcing its changes on the models topic."""
    with Parts(get_settings()) as parts:
        yield parts.registry


@models_app.command("list")
def models_list() -> None:
    """Adapter versions with status and scores."""
    from rich.console import Console
    from rich.table import Table

    with _store() as store:
        rows = store.adapters.list()
    table = Table("version", "status", "ROUGE-1 F", "BLEU-3", "created", "promoted", "reason")
    for row in rows:
        m = json.loads(row.metrics)
        table.add_row(row.version, row.status, str(m.get("rouge1_f", "")), str(m.get("bleu3", "")),
                      f"{row.created_at:%Y-%m-%d %H:%M}", f"{row.promoted_at:%Y-%m-%d %H:%M}" if row.promoted_at else "",
                      row.reason)
    Console().print(table)


@models_app.command("promote")
def models_promote(version: Annotated[str, typer.Argument(help="Version to put in production, e.g. v3.")]) -> None:
    """Put VERSION in production (taggers switch within seconds)."""
    from topictag.adapters.registry import AdapterRefused

    try:
        with _registry() as registry:
            registry.promote(version, "promoted by hand", get_settings().student.model_name)
    except AdapterRefused as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"{version} is in production")


@models_app.command("rollback")
def models_rollback() -> None:
    """Retire the production adapter and restore the one before it (or the base model)."""
    from topictag.adapters.registry import AdapterRefused

    try:
        with _registry() as registry:
            restored = registry.rollback()
    except AdapterRefused as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"{restored.version if restored else 'the base model'} is in production")


apikey_app = typer.Typer(help="API keys for the gateway's write endpoints.", no_args_is_help=True)
app.add_typer(apikey_app, name="apikey")
db_app = typer.Typer(help="The store's schema: its migration and upgrades.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Migration to upgrade to.")] = "head",
) -> None:
    """Migrate the store to this release's schema (services also do it when they start).
    Safe to run while services run, and more than once."""
    from topictag.store import Store
    from topictag.store.schema import upgrade

    setup_logging("db", level="INFO")
    store = Store(get_settings().store_url)
    try:
        typer.echo(f"store schema at {upgrade(store.engine, revision)}")
    finally:
        store.close()


@db_app.command("revision")
def db_revision(message: Annotated[str, typer.Argument(help="What the migration changes, e.g. 'papers: confidence'.")]) -> None:
    """For developers: write a migration for the difference between the models and the
    newest migration (to review before committing)."""
    import tempfile

    from alembic import command
    from alembic.script import Script

    from topictag.store import Store
    from topictag.store.schema import alembic_config, upgrade

    with tempfile.TemporaryDirectory() as scratch:
        store = Store(f"sqlite:///{scratch}/schema.db")
        try:
            upgrade(store.engine)
            with store.engine.begin() as conn:
                script = command.revision(alembic_config(conn), message, autogenerate=True)
        finally:
            store.close()
    assert isinstance(script, Script)  # one head, one new revision
    typer.echo(f"wrote {script.path}")


@db_app.command("current")
def db_current() -> None:
    """The store's migration and this release's newest; exit code 1 when they differ."""
    from topictag.store import Store
    from topictag.store.schema import current, head

    store = Store(get_settings().store_url)
    try:
        at, newest = current(store.engine), head()
    finally:
        store.close()
    typer.echo(f"store at {at or 'nothing (empty, or made before migrations)'}; this release needs {newest}")
    if at != newest:
        raise typer.Exit(1)


@apikey_app.command("create")
def apikey_create(name: Annotated[str, typer.Argument(help="Who or what the key is for.")]) -> None:
    """Create a key and print it (once: only its hash is stored)."""
    from topictag.gateway.auth import create_key

    try:
        with _store() as store:
            typer.echo(create_key(store, name))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@apikey_app.command("revoke")
def apikey_revoke(name: Annotated[str, typer.Argument(help="Name the key was created with.")]) -> None:
    """Revoke a key; requests with it get 403 from then on."""
    from topictag.gateway.auth import revoke_key

    with _store() as store:
        revoked = revoke_key(store, name)
    if not revoked:
        raise typer.BadParameter(f"no active API key named {name!r}")
    typer.echo(f"revoked {name}")


@app.command()
def reindex(
    batch_size: Annotated[int, typer.Option(min=1)] = 256,
) -> None:
    """Build topic clusters and search embeddings for papers tagged before indexing existed."""
    from topictag.topics.index import TopicIndex

    with _store() as store:
        index = TopicIndex(store, get_settings().topics.cluster_threshold)
        done, last = 0, ""
        while batch := store.papers.tagged_after(last, batch_size):
            index.add(batch)
            done, last = done + len(batch), batch[-1][0].arxiv_id
    typer.echo(f"indexed {done} papers")


@app.command()
def distill(
    labels: Annotated[Path, typer.Option(help="Teacher labels: abstract and teacher_topic (or topic) columns.")],
    out: Annotated[Path, typer.Option(help="Folder to write the adapter and its metrics.json to (must not exist).")],
    eval: Annotated[Optional[Path], typer.Option(help="Labels to score on. Omitted: the deterministic held-out split of LABELS, never trained on.")] = None,
    epochs: Annotated[Optional[float], typer.Option(min=0.01)] = None,
    learning_rate: Annotated[Optional[float], typer.Option(min=0)] = None,
    lora_rank: Annotated[Optional[int], typer.Option(min=1)] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1)] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after N optimizer steps.")] = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Train on the first N training rows only.")] = None,
) -> None:
    """Train a LoRA adapter for the student from a labels file and score it."""
    from topictag.distill.dataset import split_labels
    from topictag.distill.train import distill as run_distill
    from topictag.files import read_labels

    setup_logging("distill", level="WARNING")
    settings = get_settings()
    overrides = {k: v for k, v in {"epochs": epochs, "learning_rate": learning_rate, "lora_rank": lora_rank,
                                   "batch_size": batch_size, "max_steps": max_steps}.items() if v is not None}
    if lora_rank is not None:
        overrides["lora_alpha"] = 2 * lora_rank
    settings = settings.model_copy(update={"distill": settings.distill.model_copy(update=overrides)})
    frame = read_labels(labels)
    if eval is not None:
        train_rows, eval_rows = frame, read_labels(eval)
    else:
        train_rows, eval_rows = split_labels(frame, settings.trainer.eval_fraction)
    if limit:
        train_rows = train_rows.head(limit)
    try:
        result = run_distill(settings, train_rows, out, eval=eval_rows)
    except FileExistsError as exc:
        raise typer.BadParameter(str(exc), param_hint="--out") from None
    _emit({"adapter": str(result.path), "n_train": result.n_train, "n_eval": result.n_eval,
           "train_seconds": result.train_seconds, "samples_per_s": result.samples_per_s} | result.metrics, None)


@app.command("settings")
def settings_cmd(
    markdown: Annotated[
        bool, typer.Option(help="The Markdown reference (docs/settings.md); --no-markdown: NAME=default lines.")
    ] = True,
) -> None:
    """Print every setting with its environment variable, default and description."""
    from topictag.settings_doc import settings_reference

    typer.echo(settings_reference(markdown=markdown), nl=False)
